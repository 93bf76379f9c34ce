package config_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kvhost/kvhost/host/config"
)

func TestDefaultIsLoopbackAnonymousSQLite(t *testing.T) {
	f := config.Default()
	if !f.Loopback() || !f.Auth.Anonymous || f.Backend.Plugin != "sqlite" || f.Backend.Settings["path"] != "data/kvhost.db" {
		t.Fatalf("default config: %+v", f)
	}
}

func TestParse(t *testing.T) {
	f, err := config.Parse([]byte(`
listen: 0.0.0.0:9000
metrics_listen: 127.0.0.1:9001
auth:
  tokens:
    - {token: t1, principal: alice, tenant: acme}
tls: {allow_plaintext_on_network: true}
limits: {max_value_bytes: 4096}
request_timeout: 2s
backend: {plugin: memory, shared_pages: false}
policies:
  - name: keys
    path: /p/keyvalidation.wasm
    config: {max_key_length: 64}
`))
	if err != nil {
		t.Fatal(err)
	}
	if f.Loopback() || f.Auth.Anonymous || f.Limits.MaxValueBytes != 4096 || f.RequestTimeout != 2*time.Second {
		t.Fatalf("parsed %+v", f)
	}
	if f.Backend.Plugin != "memory" || f.Backend.SharedPages == nil || *f.Backend.SharedPages {
		t.Fatalf("backend parsed as %+v, want memory without shared pages", f.Backend)
	}
	specs, err := f.PolicySpecs()
	if err != nil || len(specs) != 1 || string(specs[0].Config) != `{"max_key_length":64}` || specs[0].Path != "/p/keyvalidation.wasm" {
		t.Fatalf("policy specs: %+v %v", specs, err)
	}
}

func TestParseErrorsNameTheProblem(t *testing.T) {
	cases := map[string]string{
		"auth: {anonymous: true}\nlistn: x\n":                                         "listn",
		"auth: [\n":                                                                   "yaml",
		"auth: {anonymous: false}\n":                                                  "nobody could call",
		"auth: {anonymous: true}\nlisten: nonsense\n":                                 "listen",
		"auth: {anonymous: true}\ntls: {cert_file: a}\n":                              "key_file",
		"auth: {tokens: [{token: x}]}\n":                                              "principal",
		"auth: {tokens: [{token: x, principal: p, tenant: a/b}]}\n":                   "tenant",
		"auth: {anonymous: true}\nlog_level: loud\n":                                  "log_level",
		"auth: {anonymous: true}\npolicies: [{name: a, path: x, mode: maybe}]\n":      "mode",
		"auth: {anonymous: true}\npolicies: [{name: a, path: x}, {name: a, path: y}]": "twice",
		"auth: {anonymous: true}\nrequest_timeout: soon\n":                            "line 2",
		"auth: {tokens: [{token: x, principal: p}]}\n":                                "needs a tenant",
		"auth: {anonymous: true}\nlisten_unix: /run/k.sock\nlisten_unix_mode: 0666\n": "listen_unix_mode",
		"auth: {anonymous: true}\nlisten_unix: /" + strings.Repeat("x", 100) + "\n":   "listen_unix",
	}
	for in, want := range cases {
		_, err := config.Parse([]byte(in))
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an invalid-configuration error naming %q", in, err, want)
		}
	}
}

// FuzzParse: any input either parses into a valid file or fails with
// ErrInvalid; never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte("listen: 127.0.0.1:1\nauth: {anonymous: true}\n"))
	f.Add([]byte("auth: {tokens: [{token: a, principal: b, tenant: c}]}\nlimits: {max_key_bytes: 10}\n"))
	f.Add([]byte("policies: [{name: x, path: y, config: {a: [1, 2]}}]\nauth: {anonymous: true}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := config.Parse(data)
		if err != nil {
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if err := file.Validate(); err != nil {
			t.Fatalf("parsed file does not validate: %v", err)
		}
	})
}

// A configuration that would expose the store beyond this machine is
// refused with a message naming the setting that allows it; said
// explicitly, it is accepted and listed for a loud warning.
func TestExposureNeedsToBeSaid(t *testing.T) {
	const token = "auth: {tokens: [{token: x, principal: p, tenant: t}]}\n"
	refused := map[string]string{
		"listen: 0.0.0.0:7070\nauth: {anonymous: true}\n": "auth.allow_anonymous_on_network",
		"listen: 0.0.0.0:7070\n" + token:                  "tls.allow_plaintext_on_network",
		"listen: '[::]:7070'\n" + token:                   "tls.allow_plaintext_on_network",
		"metrics_listen: 0.0.0.0:7071\n" + token:          "metrics_token",
		"listen: 10.1.2.3:7070\ntls: {allow_plaintext_on_network: true}\nmetrics_listen: ':7071'\n" + token: "allow_open_metrics_on_network",
		// The profiler beyond loopback needs the token itself: allowing open
		// metrics does not open it.
		"metrics_listen: 0.0.0.0:7071\nallow_open_metrics_on_network: true\nenable_pprof: true\n" + token: "enable_pprof",
	}
	for in, want := range refused {
		_, err := config.Parse([]byte(in))
		if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want a refusal naming %s", in, err, want)
		}
	}
	allowed := map[string]int{
		"listen: 0.0.0.0:7070\nauth: {anonymous: true, allow_anonymous_on_network: true}\n":                        1,
		"listen: 0.0.0.0:7070\ntls: {allow_plaintext_on_network: true}\n" + token:                                  1,
		"listen: 0.0.0.0:7070\ntls: {cert_file: c, key_file: k}\nmetrics_listen: ':9'\nmetrics_token: m\n" + token: 0,
		"metrics_listen: ':9'\nmetrics_token: m\nenable_pprof: true\n" + token:                                     0,
		"enable_pprof: true\n" + token: 0, // loopback metrics
		// A unix socket is local: plaintext tokens and anonymous calls on it
		// never leave the machine, and need no allow_ setting.
		"listen_unix: /run/kvhost.sock\nauth: {anonymous: true}\n":        0,
		"listen_unix: /run/kvhost.sock\nlisten_unix_mode: 0660\n" + token: 0,
	}
	for in, warnings := range allowed {
		f, err := config.Parse([]byte(in))
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if got := f.Insecure(); len(got) != warnings {
			t.Errorf("Parse(%q) warns of %q, want %d warnings", in, got, warnings)
		}
	}
}

func TestListenUnixMode(t *testing.T) {
	for in, want := range map[string]os.FileMode{
		"":                          0o600,
		"listen_unix_mode: 0600\n":  0o600,
		"listen_unix_mode: 0660\n":  0o660,
		"listen_unix_mode: '660'\n": 0o660,
	} {
		f, err := config.Parse([]byte("auth: {anonymous: true}\nlisten_unix: /tmp/k.sock\n" + in))
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if got, err := f.UnixMode(); err != nil || got != want {
			t.Errorf("Parse(%q): mode %#o %v, want %#o", in, got, err, want)
		}
	}
}
