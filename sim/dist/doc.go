// Package dist holds the random distributions the simulator samples from:
// session lengths (Weibull, lognormal), inter-arrival times (exponential),
// file popularity (Zipf) and categorical mixes such as capacity classes and
// NAT kinds (Discrete).
//
// Every sampler takes the simulator's single seeded *rand.Rand as an argument
// instead of owning a source, so that one seed fixes a whole run and the same
// scenario and seed reproduce the same outputs. The samplers hold no mutable
// state, are safe to share between goroutines as long as each goroutine uses
// its own *rand.Rand, and do not allocate per sample.
//
// Determinism rests on math/rand/v2's generators producing the same stream for
// the same seed, which they do everywhere, and on the math package giving the
// same results, which holds for one binary on one kind of CPU but not across
// all machines: on amd64, math.Exp chooses an FMA code path at run time when
// the CPU has FMA, and GOAMD64=v3 or arm64 builds let the compiler fuse
// multiply-adds. A last-bit difference in one sample can reorder events and
// make a whole run diverge, so compare runs made by the same binary on the
// same machine class (as CI's run-twice check does).
//
// Scenario files describe a continuous distribution with a Spec, which
// validates its parameters and builds a Sampler.
package dist
