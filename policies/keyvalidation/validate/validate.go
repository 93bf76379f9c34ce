// Package validate is the logic of the keyvalidation policy: which keys
// are well formed (length, characters) and where they may live (allowed
// and reserved prefixes).
package validate

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kvhost/kvhost/policies/internal/config"
	"github.com/kvhost/kvhost/policies/sdk"
)

// Config is the policy's configuration.
type Config struct {
	// MaxKeyLength caps a key or prefix, in bytes. Default 1024.
	MaxKeyLength int `json:"max_key_length"`
	// AllowedPrefixes, when not empty, are the only places keys may
	// live.
	AllowedPrefixes []string `json:"allowed_prefixes"`
	// ReservedPrefixes may not be touched at all, except by
	// ExemptPrincipals.
	ReservedPrefixes []string `json:"reserved_prefixes"`
	ExemptPrincipals []string `json:"exempt_principals"`
	// CharacterClasses lists the character classes keys may use: lower,
	// upper, digit, alnum, punct, space, unicode. Default: alnum, punct.
	CharacterClasses []string `json:"character_classes"`
	// ExtraCharacters are allowed on top of the classes, e.g. "-_./:".
	ExtraCharacters string `json:"extra_characters"`
	// MaxValueLength caps put values, in bytes, when positive.
	MaxValueLength int `json:"max_value_length"`
}

// Validator checks keys against a Config.
type Validator struct {
	cfg     Config
	ascii   [128]bool // allowed ASCII characters
	unicode bool      // non-ASCII letters, marks, numbers, symbols, punctuation
	classes string    // for messages
	exempt  map[string]bool
}

const punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// New validates cfg and returns a Validator.
func New(cfg Config) (*Validator, error) {
	if cfg.MaxKeyLength < 0 {
		return nil, errors.New("keyvalidation: max_key_length must not be negative")
	}
	if cfg.MaxKeyLength == 0 {
		cfg.MaxKeyLength = 1024
	}
	if cfg.MaxValueLength < 0 {
		return nil, errors.New("keyvalidation: max_value_length must not be negative")
	}
	if len(cfg.CharacterClasses) == 0 && cfg.ExtraCharacters == "" {
		cfg.CharacterClasses = []string{"alnum", "punct"}
	}
	v := &Validator{cfg: cfg, exempt: map[string]bool{}}
	set := func(chars string) {
		for i := 0; i < len(chars); i++ {
			v.ascii[chars[i]] = true
		}
	}
	for _, c := range cfg.CharacterClasses {
		switch c {
		case "lower":
			set("abcdefghijklmnopqrstuvwxyz")
		case "upper":
			set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
		case "digit":
			set("0123456789")
		case "alnum":
			set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
		case "punct":
			set(punct)
		case "space":
			set(" ")
		case "unicode":
			v.unicode = true
		default:
			return nil, fmt.Errorf("keyvalidation: unknown character class %q (want lower, upper, digit, alnum, punct, space or unicode)", c)
		}
	}
	for _, r := range cfg.ExtraCharacters {
		if r >= utf8.RuneSelf || r < 0x20 || r == 0x7f {
			return nil, fmt.Errorf("keyvalidation: extra_characters may only hold printable ASCII, got %q", r)
		}
		v.ascii[r] = true
	}
	v.classes = strings.Join(cfg.CharacterClasses, ", ")
	if cfg.ExtraCharacters != "" {
		if v.classes != "" {
			v.classes += " and "
		}
		v.classes += fmt.Sprintf("%q", cfg.ExtraCharacters)
	}
	for _, list := range [][]string{cfg.AllowedPrefixes, cfg.ReservedPrefixes} {
		for _, p := range list {
			if p == "" {
				return nil, errors.New("keyvalidation: an empty prefix would cover every key; leave the list empty instead")
			}
		}
	}
	for _, p := range cfg.ExemptPrincipals {
		v.exempt[p] = true
	}
	return v, nil
}

// Parse decodes a JSON configuration and returns its Validator.
func Parse(data []byte) (*Validator, error) {
	var cfg Config
	if err := config.Decode(data, &cfg); err != nil {
		return nil, fmt.Errorf("keyvalidation: %w", err)
	}
	return New(cfg)
}

// Evaluate decides one request.
func (v *Validator) Evaluate(req *sdk.Request) sdk.Decision {
	if req.Op == sdk.OpStats || req.Op == sdk.OpAdmin {
		return sdk.Allow()
	}
	key, what := req.Key, "key"
	if req.Op.IsPrefixOp() {
		what = "prefix"
	}
	if key == "" && !req.Op.IsPrefixOp() {
		return sdk.Deny("the key is empty").WithCode("key_empty")
	}
	if len(key) > v.cfg.MaxKeyLength {
		return sdk.Denyf("%s is %d bytes long, more than the %d allowed", what, len(key), v.cfg.MaxKeyLength).WithCode("key_too_long")
	}
	if d, ok := v.checkChars(key, what); !ok {
		return d
	}
	for _, r := range v.cfg.ReservedPrefixes {
		if strings.HasPrefix(key, r) && !v.exempt[req.Principal] {
			return sdk.Denyf("%s %q is under the reserved prefix %q", what, key, r).WithCode("reserved_prefix")
		}
		if req.Op == sdk.OpDeletePrefix && strings.HasPrefix(r, key) && !v.exempt[req.Principal] {
			return sdk.Denyf("deleting prefix %q would delete keys under the reserved prefix %q", key, r).WithCode("reserved_prefix")
		}
	}
	if len(v.cfg.AllowedPrefixes) > 0 && !v.allowedPlace(key, req.Op.IsPrefixOp()) {
		return sdk.Denyf("%s %q is outside the allowed prefixes %s", what, key, quoteList(v.cfg.AllowedPrefixes)).WithCode("prefix_not_allowed")
	}
	if req.Op == sdk.OpPut && v.cfg.MaxValueLength > 0 && req.ValueLen > v.cfg.MaxValueLength {
		return sdk.Denyf("value is %d bytes, more than the %d allowed", req.ValueLen, v.cfg.MaxValueLength).WithCode("value_too_large")
	}
	return sdk.Allow()
}

func (v *Validator) checkChars(key, what string) (sdk.Decision, bool) {
	// Bytes first: keys are nearly always ASCII, and in a Go policy every
	// function call counts.
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c < utf8.RuneSelf {
			if !v.ascii[c] {
				return v.badChar(key, what, rune(c), i), false
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(key[i:])
		if r == utf8.RuneError && size == 1 {
			return sdk.Denyf("%s is not valid UTF-8 (byte %d)", what, i).WithCode("key_bad_character"), false
		}
		if !v.unicode || !unicode.IsPrint(r) {
			return v.badChar(key, what, r, i), false
		}
		i += size - 1
	}
	return sdk.Decision{}, true
}

func (v *Validator) badChar(key, what string, r rune, i int) sdk.Decision {
	return sdk.Denyf("%s %q has the character %q at byte %d; allowed: %s", what, key, r, i, v.classes).WithCode("key_bad_character")
}

// allowedPlace: a key must sit under an allowed prefix; a prefix
// operation may also name a broader prefix that still leads to one.
func (v *Validator) allowedPlace(key string, isPrefix bool) bool {
	for _, p := range v.cfg.AllowedPrefixes {
		if strings.HasPrefix(key, p) || (isPrefix && strings.HasPrefix(p, key)) {
			return true
		}
	}
	return false
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
