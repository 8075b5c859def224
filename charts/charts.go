// Package charts embeds the Helm charts llmctl installs, so the binary needs
// no chart repository. The all: prefix keeps files starting with _ or .
// (_helpers.tpl, .helmignore), which a plain go:embed silently drops.
package charts

import "embed"

// Gateway is the llmctl-gateway chart's directory tree, rooted at
// "llmctl-gateway".
//
//go:embed all:llmctl-gateway
var Gateway embed.FS

// GatewayDir is the chart's root directory inside Gateway.
const GatewayDir = "llmctl-gateway"
