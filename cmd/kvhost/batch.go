package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvhost/kvhost/kv"
)

// batchLine is one operation of a batch file.
type batchLine struct {
	Op          string  `json:"op"`
	Key         string  `json:"key"`
	Value       *string `json:"value"`
	ValueBase64 bool    `json:"value_base64"`
	TTL         string  `json:"ttl"`
	IfVersion   *int64  `json:"if_version"`
	IfAbsent    bool    `json:"if_absent"`
}

// parseBatch reads one JSON object per line; blank lines and lines
// starting with # are skipped. Errors name the line.
func parseBatch(r io.Reader) ([]kv.Op, error) {
	var ops []kv.Op
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		op, err := parseBatchLine(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		ops = append(ops, op)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(ops) == 0 {
		return nil, errors.New("no operations")
	}
	return ops, nil
}

func parseBatchLine(text string) (kv.Op, error) {
	var l batchLine
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return kv.Op{}, fmt.Errorf("not a batch operation: %w", err)
	}
	var cond kv.Condition
	switch {
	case l.IfAbsent && l.IfVersion != nil:
		return kv.Op{}, errors.New("if_absent and if_version exclude each other")
	case l.IfAbsent:
		cond = kv.IfAbsent()
	case l.IfVersion != nil:
		cond = kv.IfVersion(*l.IfVersion)
	}
	switch l.Op {
	case "put":
		if l.Value == nil {
			return kv.Op{}, errors.New(`put needs a "value"`)
		}
		value := []byte(*l.Value)
		if l.ValueBase64 {
			b, err := base64.StdEncoding.DecodeString(*l.Value)
			if err != nil {
				return kv.Op{}, fmt.Errorf("value_base64: %w", err)
			}
			value = b
		}
		var ttl time.Duration
		if l.TTL != "" {
			d, err := time.ParseDuration(l.TTL)
			if err != nil || d < 0 {
				return kv.Op{}, fmt.Errorf("ttl %q is not a duration such as 30s or 1h", l.TTL)
			}
			ttl = d
		}
		return kv.PutOp(l.Key, value, ttl, cond), nil
	case "del", "delete":
		if l.Value != nil || l.TTL != "" || l.IfAbsent {
			return kv.Op{}, errors.New("del takes only key and if_version")
		}
		return kv.DeleteOp(l.Key, cond), nil
	}
	return kv.Op{}, fmt.Errorf(`op %q: want "put" or "del"`, l.Op)
}

func batchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "batch [FILE]",
		Short: "Apply the puts and deletes in FILE (default: standard input) atomically",
		Long: `
FILE holds one JSON object per line (blank lines and # comments are
skipped); "-" or no FILE reads standard input:

  {"op": "put", "key": "app/a", "value": "1", "ttl": "1h"}
  {"op": "put", "key": "app/b", "value": "AAE=", "value_base64": true, "if_absent": true}
  {"op": "del", "key": "app/c", "if_version": 7}

All the operations apply, in order, or none does: a condition that does
not hold, or a policy that denies any one of them (each is evaluated on
its own, as part of a batch), fails the whole batch and names the op.
Prints one line per operation; with -o json, one object per operation.`,
		Args: nargs(0, 1),
	}
	k := newConn(cmd, true)
	cmd.RunE = k.run(func(cmd *cobra.Command, args []string) error {
		in, name := cmd.InOrStdin(), "standard input"
		if len(args) == 1 && args[0] != "-" {
			f, err := os.Open(args[0])
			if err != nil {
				return usageError(cmd, "%v", err)
			}
			defer f.Close()
			in, name = f, args[0]
		}
		ops, err := parseBatch(in)
		if err != nil {
			return usageError(cmd, "%s: %v", name, err)
		}
		ctx, cancel := k.ctx(cmd)
		defer cancel()
		res, err := k.c.Batch(ctx, ops)
		if err != nil {
			return err // a failed condition names its op and key
		}
		return k.printBatch(ops, res)
	})
	return cmd
}

// printBatch prints one line (or JSON object) per operation.
func (k *conn) printBatch(ops []kv.Op, res []kv.OpResult) error {
	for i, op := range ops {
		var r kv.OpResult
		if i < len(res) {
			r = res[i]
		}
		var err error
		switch {
		case k.json && op.Kind == kv.OpPut:
			err = k.emit(struct {
				Op        string     `json:"op"`
				Key       string     `json:"key"`
				Version   int64      `json:"version"`
				ExpiresAt *time.Time `json:"expires_at"`
			}{"put", op.Key, r.Version, instant(r.ExpiresAt)})
		case k.json:
			err = k.emit(struct {
				Op      string `json:"op"`
				Key     string `json:"key"`
				Deleted bool   `json:"deleted"`
			}{"del", op.Key, r.Deleted})
		case op.Kind == kv.OpPut && r.ExpiresAt.IsZero():
			err = k.printf("put %q: version %d\n", op.Key, r.Version)
		case op.Kind == kv.OpPut:
			err = k.printf("put %q: version %d, %s\n", op.Key, r.Version, expiry(r.ExpiresAt))
		case r.Deleted:
			err = k.printf("deleted %q\n", op.Key)
		default:
			err = k.printf("key %q did not exist; nothing deleted\n", op.Key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
