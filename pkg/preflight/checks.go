package preflight

import "slices"

// All returns every check in report order: the chain from the host to the
// model, so the first failure printed is usually the root cause.
func All() []Check {
	return slices.Concat(hostChecks(), gpuChecks(), runtimeChecks(), clusterChecks(), modelChecks())
}
