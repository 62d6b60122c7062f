package sim

import "errors"

// ErrScenario reports a scenario the simulator cannot run: a value out of
// range (every error of Scenario.Validate wraps it) or a scenario file
// with unknown keys, a version this build does not read, or malformed TOML.
var ErrScenario = errors.New("sim: bad scenario")
