// Package preflight is `llmctl doctor`: independent checks over a view of the
// host (a filesystem root, NVML, a Kubernetes client) that produce a report
// with a verdict, evidence and a fix for each.
package preflight
