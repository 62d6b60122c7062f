package dist

import "fmt"

// Kinds of distribution a Spec can name.
const (
	KindWeibull     = "weibull"
	KindLogNormal   = "lognormal"
	KindExponential = "exponential"
	KindFixed       = "fixed"
)

// Spec describes a continuous distribution in a scenario file, for example
//
//	[session]
//	kind = "weibull"
//	k = 0.38
//	lambda = 42.4
//
// Only the parameters of the chosen Kind may be set: a non-zero parameter
// that the kind does not use is reported by Validate, because it is almost
// always a mistake (a lognormal with k set was meant to be a Weibull).
type Spec struct {
	// Kind is one of "weibull", "lognormal", "exponential" or "fixed".
	Kind string `toml:"kind" json:"kind"`
	// K is the Weibull shape.
	K float64 `toml:"k,omitempty" json:"k,omitempty"`
	// Lambda is the Weibull scale.
	Lambda float64 `toml:"lambda,omitempty" json:"lambda,omitempty"`
	// Mu is the lognormal mean of the logarithm.
	Mu float64 `toml:"mu,omitempty" json:"mu,omitempty"`
	// Sigma is the lognormal standard deviation of the logarithm.
	Sigma float64 `toml:"sigma,omitempty" json:"sigma,omitempty"`
	// Rate is the exponential rate (the inverse of its mean).
	Rate float64 `toml:"rate,omitempty" json:"rate,omitempty"`
	// Value is the constant of the fixed kind.
	Value float64 `toml:"value,omitempty" json:"value,omitempty"`
}

// Validate reports whether the Spec names a known kind, its parameters are in
// range, and no parameter of another kind is set.
func (s Spec) Validate() error {
	_, err := s.Sampler()
	return err
}

// Sampler returns the distribution the Spec describes, or an error wrapping
// ErrUnknownKind or ErrInvalidParameter.
func (s Spec) Sampler() (Sampler, error) {
	var (
		smp  Sampler
		err  error
		uses map[string]bool
	)
	switch s.Kind {
	case KindWeibull:
		w := Weibull{K: s.K, Lambda: s.Lambda}
		smp, err, uses = w, w.Validate(), map[string]bool{"k": true, "lambda": true}
	case KindLogNormal:
		l := LogNormal{Mu: s.Mu, Sigma: s.Sigma}
		smp, err, uses = l, l.Validate(), map[string]bool{"mu": true, "sigma": true}
	case KindExponential:
		e := Exponential{Rate: s.Rate}
		smp, err, uses = e, e.Validate(), map[string]bool{"rate": true}
	case KindFixed:
		f := Fixed{Value: s.Value}
		smp, err, uses = f, f.Validate(), map[string]bool{"value": true}
	default:
		return nil, fmt.Errorf("%w: %q (want %q, %q, %q or %q)", ErrUnknownKind,
			s.Kind, KindWeibull, KindLogNormal, KindExponential, KindFixed)
	}
	if err != nil {
		return nil, err
	}
	// Fixed order so the first reported stray parameter is stable.
	for _, p := range []struct {
		name string
		v    float64
	}{{"k", s.K}, {"lambda", s.Lambda}, {"mu", s.Mu}, {"sigma", s.Sigma}, {"rate", s.Rate}, {"value", s.Value}} {
		if !uses[p.name] && p.v != 0 { // NaN != 0, so a stray NaN is caught too
			return nil, fmt.Errorf("%w: %s = %v is not a parameter of kind %q", ErrInvalidParameter, p.name, p.v, s.Kind)
		}
	}
	return smp, nil
}

// String returns the Spec in a compact form for logs and summaries, such as
// "weibull(k=0.38, lambda=42.4)".
func (s Spec) String() string {
	switch s.Kind {
	case KindWeibull:
		return fmt.Sprintf("weibull(k=%g, lambda=%g)", s.K, s.Lambda)
	case KindLogNormal:
		return fmt.Sprintf("lognormal(mu=%g, sigma=%g)", s.Mu, s.Sigma)
	case KindExponential:
		return fmt.Sprintf("exponential(rate=%g)", s.Rate)
	case KindFixed:
		return fmt.Sprintf("fixed(%g)", s.Value)
	default:
		return fmt.Sprintf("%s(?)", s.Kind)
	}
}
