package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Mode says whether a policy's denials are enforced.
type Mode int

// Modes.
const (
	// Enforce refuses what the policy denies.
	Enforce Mode = iota
	// Audit logs and counts what the policy denies (or fails on) but lets
	// the operation proceed, and ignores its TTL rewrites.
	Audit
)

func (m Mode) String() string {
	if m == Audit {
		return "audit"
	}
	return "enforce"
}

// ParseMode parses "enforce" (or "") and "audit".
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(s) {
	case "", "enforce":
		return Enforce, nil
	case "audit":
		return Audit, nil
	}
	return 0, fmt.Errorf("policy: unknown mode %q (want enforce or audit)", s)
}

// Defaults.
const (
	DefaultTimeout          = 10 * time.Millisecond
	DefaultMemoryLimitPages = 512   // 32 MiB
	maxMemoryPages          = 65536 // 4 GiB, all a 32-bit memory can address
	// InitTimeout bounds an instance's start: _initialize, kvhost_init
	// and the warm-up evaluation.
	InitTimeout = 5 * time.Second
)

// Spec is one policy of the chain.
type Spec struct {
	// Name identifies the policy in decisions, errors, logs and metrics.
	// Default: the file name without ".wasm".
	Name string
	// Path is the .wasm file.
	Path string
	// Config is the JSON configuration handed to kvhost_init; nil sends
	// "null".
	Config []byte
	// ConfigPath, when set, is a YAML or JSON file read (and watched)
	// instead of Config.
	ConfigPath string
	Mode       Mode
	// FailOpen lets operations proceed when the policy fails (deadline,
	// trap, memory, crash); by default they are refused.
	FailOpen bool
	// Timeout is the deadline of one evaluation; default 10ms.
	Timeout time.Duration
	// MemoryLimitPages caps each instance's memory in 64 KiB pages;
	// default 512 (32 MiB), at most 65536. An evaluation whose memory
	// would reach it fails.
	MemoryLimitPages uint32
	// PoolSize is the number of instances, hence of concurrent
	// evaluations; default GOMAXPROCS, at most 8 (a Go policy instance
	// holds about 3.5 MiB, and an evaluation takes microseconds).
	PoolSize int
}

func (s Spec) withDefaults() Spec {
	if s.Name == "" {
		s.Name = strings.TrimSuffix(filepath.Base(s.Path), ".wasm")
	}
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	if s.MemoryLimitPages == 0 {
		s.MemoryLimitPages = DefaultMemoryLimitPages
	}
	if s.PoolSize <= 0 {
		s.PoolSize = min(runtime.GOMAXPROCS(0), 8)
	}
	return s
}

// SpecConfig is the YAML form of a Spec, for embedding in the host's
// configuration file:
//
//	policies:
//	  - name: acl
//	    path: bin/policies/acl.wasm
//	    mode: enforce        # or audit
//	    fail_open: false
//	    timeout: 10ms
//	    memory_limit_pages: 512
//	    pool_size: 4
//	    config:              # any YAML; the policy receives it as JSON
//	      rules: [...]
type SpecConfig struct {
	Name             string        `yaml:"name" json:"name"`
	Path             string        `yaml:"path" json:"path"`
	Mode             string        `yaml:"mode" json:"mode"`
	FailOpen         bool          `yaml:"fail_open" json:"fail_open"`
	Timeout          time.Duration `yaml:"timeout" json:"timeout"`
	MemoryLimitPages uint32        `yaml:"memory_limit_pages" json:"memory_limit_pages"`
	PoolSize         int           `yaml:"pool_size" json:"pool_size"`
	Config           any           `yaml:"config" json:"config"`
	ConfigFile       string        `yaml:"config_file" json:"config_file"`
}

// Spec converts the YAML form, turning Config into JSON. Relative paths
// are resolved against baseDir (the configuration file's directory; ""
// leaves them as they are).
func (c SpecConfig) Spec(baseDir string) (Spec, error) {
	mode, err := ParseMode(c.Mode)
	if err != nil {
		return Spec{}, err
	}
	if c.Path == "" {
		return Spec{}, fmt.Errorf("policy %q: no path", c.Name)
	}
	if c.Config != nil && c.ConfigFile != "" {
		return Spec{}, fmt.Errorf("policy %q: set config or config_file, not both", c.Name)
	}
	cfg, err := jsonValue(c.Config)
	if err != nil {
		return Spec{}, fmt.Errorf("policy %q: config: %w", c.Name, err)
	}
	resolve := func(p string) string {
		if p == "" || baseDir == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(baseDir, p)
	}
	return Spec{
		Name: c.Name, Path: resolve(c.Path), Config: cfg, ConfigPath: resolve(c.ConfigFile),
		Mode: mode, FailOpen: c.FailOpen, Timeout: c.Timeout,
		MemoryLimitPages: c.MemoryLimitPages, PoolSize: c.PoolSize,
	}, nil
}

// ConfigJSON turns a policy configuration written in YAML (or JSON, which
// is YAML) into the JSON a policy receives.
func ConfigJSON(data []byte) ([]byte, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return []byte("null"), nil
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	return jsonValue(v)
}

func jsonValue(v any) ([]byte, error) {
	v, err := jsonable(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// jsonable converts YAML-decoded values (maps with interface keys) into
// values encoding/json accepts.
func jsonable(v any) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			c, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			ks, ok := k.(string)
			if !ok {
				ks = fmt.Sprint(k)
			}
			c, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			out[ks] = c
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			c, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case time.Time:
		return t.Format(time.RFC3339Nano), nil
	}
	return v, nil
}
