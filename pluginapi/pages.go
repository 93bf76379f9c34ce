package pluginapi

import (
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/kvhost/kvhost/pluginapi/internal/sharedpages"
)

// Large list pages cross from plugin to host through a shared memory area
// (package sharedpages) rather than the plugin connection: two memory
// copies instead of framing, encryption and a dozen system calls on each
// side (docs/RATIONALE.md, "Large list pages cross in shared memory").
const (
	// pagesEnv names, in the plugin's environment, the file descriptor of
	// the area the host made for it.
	pagesEnv = "KVHOST_SHARED_PAGES_FD"
	// pageSlots pages can be lent at once; more go over the connection.
	pageSlots = 6
	// pageSlotSize holds a default-sized page (4 MiB of keys and values)
	// with its packing. Slots are used lowest first, so the memory a
	// plugin's area occupies is about its largest pages in flight at once.
	pageSlotSize = 5 << 20
)

// offerPages makes a shared page area for the plugin cmd will start and
// hands it over as an inherited file. It returns nil, and the plugin
// connection carries every page, where no area can be made.
func offerPages(cmd *exec.Cmd, logger hclog.Logger) *sharedpages.Area {
	pages, f, err := sharedpages.Create(pageSlots, pageSlotSize)
	if err != nil {
		logger.Debug("list pages go over the plugin connection", "reason", err)
		return nil
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	fd := 2 + len(cmd.ExtraFiles) // ExtraFiles start at descriptor 3
	cmd.Env = append(cmd.Env, pagesEnv+"="+strconv.Itoa(fd))
	return pages
}

// hostEnv is the host's environment for a plugin, without a shared page
// descriptor the host itself may have been given: only the one the host
// makes for this plugin may reach it.
func hostEnv() []string {
	env := os.Environ()
	kept := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, pagesEnv+"=") {
			kept = append(kept, kv)
		}
	}
	return kept
}

// closeExtraFiles closes the host's copies of the files handed to the
// plugin process.
func closeExtraFiles(cmd *exec.Cmd) {
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
}

// inheritedPages maps the shared page area the host handed this plugin,
// or returns nil when there is none (a host that does not offer one) or it
// cannot be used, and the plugin sends every page on the connection.
func inheritedPages(logger hclog.Logger) *sharedpages.Area {
	v, ok := os.LookupEnv(pagesEnv)
	if !ok {
		return nil
	}
	os.Unsetenv(pagesEnv) // not for the plugin's own children
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		logger.Warn("ignoring a malformed shared page descriptor", "env", pagesEnv, "value", v)
		return nil
	}
	// The host that set pagesEnv made the descriptor for this plugin
	// (hostEnv keeps any other from reaching it): it is closed either
	// way, and a mapping outlives it.
	f := os.NewFile(uintptr(fd), "kvhost-shared-pages")
	defer f.Close()
	pages, err := sharedpages.Map(f)
	if err != nil {
		logger.Warn("list pages go over the plugin connection", "reason", err)
		return nil
	}
	return pages
}
