//go:build !wasip1

package sdk

// Outside the sandbox (native tests) logs go nowhere.
func hostLog(Level, string) {}
