package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/spf13/cobra"

	"github.com/llmctl/llmctl/internal/printer"
)

// batchesOptions is `llmctl batches list|show|cancel`: either the
// caller's batches on a server, through its OpenAI Batches API (the key's
// tenant's batches only, as for any client), or one tenant's batches in
// the database (--db, --tenant; batchesdb.go).
type batchesOptions struct {
	server, apiKey string
	db             *dbFlag
	tenant         string
	useDB          bool
	verb           string
	id             string
	limit          int64
	after          string
	format         printer.Format
}

// batchView is one batch as printed.
type batchView struct {
	ID               string            `json:"id"`
	Status           string            `json:"status"`
	Endpoint         string            `json:"endpoint"`
	InputFileID      string            `json:"inputFileId"`
	OutputFileID     string            `json:"outputFileId,omitempty"`
	ErrorFileID      string            `json:"errorFileId,omitempty"`
	Total            int64             `json:"total"`
	Completed        int64             `json:"completed"`
	Failed           int64             `json:"failed"`
	CreatedAt        time.Time         `json:"createdAt"`
	CompletionWindow string            `json:"completionWindow"`
	Metadata         map[string]string `json:"metadata,omitempty"`
	Errors           []string          `json:"errors,omitempty"`
}

func toBatchView(b openai.Batch) batchView {
	v := batchView{ID: b.ID, Status: string(b.Status), Endpoint: b.Endpoint, InputFileID: b.InputFileID,
		OutputFileID: b.OutputFileID, ErrorFileID: b.ErrorFileID, Total: b.RequestCounts.Total,
		Completed: b.RequestCounts.Completed, Failed: b.RequestCounts.Failed, CreatedAt: time.Unix(b.CreatedAt, 0).UTC(),
		CompletionWindow: b.CompletionWindow, Metadata: b.Metadata}
	for _, e := range b.Errors.Data {
		v.Errors = append(v.Errors, e.Message)
	}
	return v
}

func (o *batchesOptions) Complete(args []string) error {
	if len(args) > 0 {
		o.id = args[0]
	}
	// A flag beats the other's environment variable; both flags, or both
	// variables and neither flag, are an error, as for ledger and tenants.
	envServer, envDB := strings.TrimSpace(os.Getenv("LLMCTL_SERVER")), os.Getenv("LLMCTL_DB")
	switch {
	case o.server != "" && o.db.DSN != "":
		return fmt.Errorf("--server and --db both given: use one (--server for a server's Batches API, --db for the database)")
	case o.server != "":
	case o.db.DSN != "":
		o.useDB = true
	case envServer != "" && envDB != "":
		return fmt.Errorf("LLMCTL_SERVER and LLMCTL_DB both set: pass --server or --db to choose")
	case envServer != "":
		o.server = envServer
	default:
		o.useDB = true
	}
	if o.apiKey == "" {
		o.apiKey = strings.TrimSpace(os.Getenv("LLMCTL_API_KEY"))
	}
	return nil
}

func (o *batchesOptions) Validate() error {
	switch {
	case o.useDB && o.tenant == "":
		return fmt.Errorf("llmctl batches on the database needs --tenant NAME (or ask a server: --server URL with the tenant's --api-key)")
	case !o.useDB && o.apiKey == "":
		return fmt.Errorf("llmctl batches --server needs an API key of the batches' tenant: --api-key or LLMCTL_API_KEY")
	case !o.useDB && o.tenant != "":
		return fmt.Errorf("--tenant is for --db; with --server the API key names the tenant")
	}
	if o.limit < 1 || o.limit > 100 {
		return fmt.Errorf("--limit %d: must be 1 to 100", o.limit)
	}
	return nil
}

func (o *batchesOptions) Run(cmd *cobra.Command, g *globals) error {
	if o.useDB {
		views, err := o.runDB(cmd.Context())
		if err != nil {
			return err
		}
		return o.print(g, views)
	}
	c := openai.NewClient(option.WithBaseURL(strings.TrimSuffix(o.server, "/")+"/v1/"), option.WithAPIKey(o.apiKey), option.WithMaxRetries(1))
	ctx := cmd.Context()
	var bs []openai.Batch
	switch o.verb {
	case "list":
		params := openai.BatchListParams{Limit: openai.Int(o.limit)}
		if o.after != "" {
			params.After = openai.String(o.after)
		}
		page, err := c.Batches.List(ctx, params)
		if err != nil {
			return fmt.Errorf("list batches: %w", err)
		}
		bs = page.Data
	case "show":
		b, err := c.Batches.Get(ctx, o.id)
		if err != nil {
			return fmt.Errorf("show batch %s: %w", o.id, err)
		}
		bs = []openai.Batch{*b}
	case "cancel":
		b, err := c.Batches.Cancel(ctx, o.id)
		if err != nil {
			return fmt.Errorf("cancel batch %s: %w", o.id, err)
		}
		bs = []openai.Batch{*b}
	}
	views := make([]batchView, 0, len(bs))
	for _, b := range bs {
		views = append(views, toBatchView(b))
	}
	return o.print(g, views)
}

func (o *batchesOptions) print(g *globals, views []batchView) error {
	if o.format != printer.Table {
		if o.verb == "list" {
			return printer.Structured(g.Out, o.format, views)
		}
		return printer.Structured(g.Out, o.format, views[0])
	}
	tw := printer.TableWriter(g.Out, "ID", "STATUS", "ENDPOINT", "DONE", "FAILED", "TOTAL", "CREATED")
	for _, v := range views {
		tw.Row(v.ID, v.Status, v.Endpoint, fmt.Sprint(v.Completed), fmt.Sprint(v.Failed), fmt.Sprint(v.Total), v.CreatedAt.Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(views) == 1 {
		for _, e := range views[0].Errors {
			fmt.Fprintln(g.Out, "error:", e)
		}
	}
	return nil
}

func newBatchesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "batches",
		Short: "List, show and cancel a tenant's batches, in the database (--db --tenant) or on a server (--server, the OpenAI Batches API)",
		Args:  cobra.NoArgs,
	}
	db := &dbFlag{g: g}
	db.bind(cmd)
	sub := func(verb, use, short string, args cobra.PositionalArgs) *cobra.Command {
		o := &batchesOptions{verb: verb, limit: 20, db: db}
		c := &cobra.Command{Use: use, Short: short, Args: args, RunE: runOptions(g, o)}
		c.Flags().StringVar(&o.server, "server", "", "the llmctl server's URL (env LLMCTL_SERVER)")
		c.Flags().StringVar(&o.apiKey, "api-key", "", "an API key of the batches' tenant (env LLMCTL_API_KEY)")
		c.Flags().StringVar(&o.tenant, "tenant", "", "with --db: the tenant (name or id) whose batches these are")
		if verb == "list" {
			c.Flags().Int64Var(&o.limit, "limit", 20, "batches per page, newest first (1 to 100)")
			c.Flags().StringVar(&o.after, "after", "", "list the batches after this batch id (the next page)")
		}
		printer.Bind(c, &o.format)
		return c
	}
	cmd.AddCommand(
		sub("list", "list", "List the key's batches, newest first", cobra.NoArgs),
		sub("show", "show BATCH_ID", "Show one batch: status, request counts, files, validation errors", cobra.ExactArgs(1)),
		sub("cancel", "cancel BATCH_ID", "Cancel a batch: running lines finish, no new line starts", cobra.ExactArgs(1)),
	)
	return cmd
}
