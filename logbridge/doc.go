// Package logbridge routes the logs of third-party libraries that bring their
// own logging interfaces into zap, so that a Canopy node has one log stream
// with one set of levels.
//
// Two libraries need it: hashicorp/memberlist, which writes to a standard
// *log.Logger with a textual "[LEVEL]" prefix on every line, and pion, which
// asks for a logging.LoggerFactory and creates one leveled logger per scope.
package logbridge
