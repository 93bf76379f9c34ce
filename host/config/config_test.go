package config_test

import (
	"errors"
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
auth:
  tokens:
    - {token: t1, principal: alice, tenant: acme}
limits: {max_value_bytes: 4096}
request_timeout: 2s
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
