package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"
	"github.com/llmctl/llmctl/pkg/deploy"
)

// downOptions are `llmctl down`'s flags.
type downOptions struct {
	g       *globals
	client  deploy.ClientFlags
	release string
	timeout time.Duration
	purge   bool
	format  printer.Format
}

func newDownCmd(g *globals) *cobra.Command {
	o := &downOptions{g: g}
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Uninstall the gateway release (volume claims are kept unless --purge)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			return o.Run(cmd)
		},
	}
	addClientFlags(cmd, &o.client)
	f := cmd.Flags()
	f.StringVar(&o.release, "release", deploy.DefaultRelease, "Helm release name")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long to wait for the resources to go")
	f.BoolVar(&o.purge, "purge", false, "also delete the release's PersistentVolumeClaims (database and Redis data)")
	printer.Bind(cmd, &o.format)
	return cmd
}

func (o *downOptions) Complete() error {
	if o.timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %s", o.timeout)
	}
	return nil
}

func (o *downOptions) Run(cmd *cobra.Command) error {
	log, err := o.g.Logger()
	if err != nil {
		return err
	}
	// After the flags are checked: a usage mistake is reported as such.
	if err := completeClient(&o.client); err != nil {
		return err
	}
	d, err := deploy.NewDeployer(o.client.Getter(), log)
	if err != nil {
		return err
	}
	res, err := d.Down(cmd.Context(), deploy.DownOptions{
		Release: o.release, Namespace: o.client.Namespace, Timeout: o.timeout, Purge: o.purge,
	})
	if err != nil {
		return err
	}
	if o.format != printer.Table {
		return printer.Structured(o.g.Out, o.format, res)
	}
	if res.AlreadyGone {
		fmt.Fprintf(o.g.Out, "release %s not found in namespace %s: nothing to uninstall\n", res.Release, res.Namespace)
	} else {
		fmt.Fprintf(o.g.Out, "uninstalled %s from namespace %s\n", res.Release, res.Namespace)
	}
	if len(res.DeletedPVCs) > 0 {
		fmt.Fprintf(o.g.Out, "deleted volume claims: %s\n", strings.Join(res.DeletedPVCs, ", "))
	}
	if len(res.KeptPVCs) > 0 {
		fmt.Fprintf(o.g.Out, "kept volume claims (data survives; --purge deletes them): %s\n", strings.Join(res.KeptPVCs, ", "))
	}
	return nil
}
