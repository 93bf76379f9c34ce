package policy

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce lets a file being written settle before a reload.
const watchDebounce = 200 * time.Millisecond

// Watch reloads the chain when one of its files (a module or a
// configuration file) changes on disk, until ctx ends or the engine is
// closed. It watches the files' directories, so replacing a file by
// rename is seen too, and follows the chain as Load changes it. A change
// that does not load (a half-written or broken module) is logged and
// counted; the running chain stays, and the next change is tried again.
//
// Run it in its own goroutine: it returns only on ctx's end or Close
// (nil), or when the watcher fails.
func (e *Engine) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	files := map[string]bool{}
	dirs := map[string]bool{}
	pending := map[string]bool{} // files changed since the last reload
	var changed chan struct{}
	sync := func() {
		e.mu.Lock()
		specs := e.specs
		changed = e.changed
		e.mu.Unlock()
		want := map[string]bool{}
		clear(files)
		for _, s := range specs {
			for _, p := range []string{s.Path, s.ConfigPath} {
				if p == "" {
					continue
				}
				if abs, err := filepath.Abs(p); err == nil {
					files[abs] = true
					want[filepath.Dir(abs)] = true
				}
			}
		}
		for d := range dirs {
			if !want[d] {
				_ = w.Remove(d)
				delete(dirs, d)
			}
		}
		for d := range want {
			if !dirs[d] {
				if err := w.Add(d); err != nil {
					e.log.Warn("policy: cannot watch directory", "dir", d, "err", err)
					continue
				}
				dirs[d] = true
			}
		}
	}
	sync()
	e.log.Debug("policy: watching files for changes", "dirs", len(dirs))
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-e.done:
			return nil
		case <-changed:
			sync()
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if abs, err := filepath.Abs(ev.Name); err == nil && files[abs] && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) != 0 {
				pending[abs] = true
				debounce.Reset(watchDebounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			e.log.Warn("policy: file watcher", "err", err)
		case <-debounce.C:
			changedFiles := slices.Sorted(maps.Keys(pending))
			clear(pending)
			e.log.Info("policy: files changed; reloading", "files", changedFiles)
			if err := e.Reload(ctx); err != nil {
				e.log.Error("policy: reload after a file change refused; the running policies stay", "files", changedFiles, "err", err)
			}
		}
	}
}
