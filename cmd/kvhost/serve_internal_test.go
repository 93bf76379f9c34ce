package main

import (
	"testing"

	"github.com/kvhost/kvhost/host/config"
)

// backend.shared_pages reaches the plugin's start configuration: on unless
// the file says false.
func TestSharedPagesSwitchReachesThePlugin(t *testing.T) {
	for _, c := range []struct {
		yaml    string
		disable bool
	}{
		{"backend: {path: /opt/kvhost-plugin-x}", false},
		{"backend: {path: /opt/kvhost-plugin-x, shared_pages: true}", false},
		{"backend: {path: /opt/kvhost-plugin-x, shared_pages: false}", true},
	} {
		f, err := config.Parse([]byte("auth: {anonymous: true}\n" + c.yaml))
		if err != nil {
			t.Fatal(err)
		}
		pc, err := backendPlugin(f)
		if err != nil {
			t.Fatal(err)
		}
		if pc.DisableSharedPages != c.disable {
			t.Errorf("%s: DisableSharedPages %v, want %v", c.yaml, pc.DisableSharedPages, c.disable)
		}
	}
}
