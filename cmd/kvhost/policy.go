package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/kvhost/kvhost/host"
	"github.com/kvhost/kvhost/host/config"
)

// newPolicyGuard builds the policy chain of the configuration; the policy
// engine lands with the policy work (issue 5).
func newPolicyGuard(_ context.Context, cfg *config.File, _ *slog.Logger, _ prometheus.Registerer) (host.Guard, func(), error) {
	if len(cfg.Policies) > 0 {
		return nil, func() {}, errPoliciesUnavailable
	}
	return nil, func() {}, nil
}

var errPoliciesUnavailable = config.ErrInvalid

func addPolicyCommands(*cobra.Command) {}
