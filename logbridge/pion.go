package logbridge

import (
	"github.com/pion/logging"
	"go.uber.org/zap"
)

// Pion returns a pion logging.LoggerFactory that writes to l. Each scope pion
// asks for ("ice", "dtls", "sctp", ...) gets a child logger named
// "pion.<scope>".
//
// Levels map one to one for Debug, Warn and Error. pion's Trace, which zap
// does not have, becomes Debug, and so does pion's Info: pion reports every
// ICE and peer-connection state change at Info, which is detail for whoever
// debugs a transfer, not news for the person running the node (Canopy logs
// its own transfer outcomes). Filtering is left to l's level:
// pion formats a Tracef or Debugf message only if l has Debug enabled, so a
// production logger at Info pays nothing for pion's chatty scopes. A nil l
// yields a factory whose loggers discard everything.
func Pion(l *zap.Logger) logging.LoggerFactory {
	if l == nil {
		l = zap.NewNop()
	}
	return pionFactory{log: l}
}

// pionFactory implements logging.LoggerFactory.
type pionFactory struct {
	log *zap.Logger
}

// NewLogger implements logging.LoggerFactory.
func (f pionFactory) NewLogger(scope string) logging.LeveledLogger {
	// The caller is skipped by one frame so that zap reports the pion line
	// that logged rather than this adapter.
	return pionLogger{s: f.log.Named("pion." + scope).WithOptions(zap.AddCallerSkip(1)).Sugar()}
}

// pionLogger implements logging.LeveledLogger on a zap SugaredLogger, which
// formats the f-variants only when the level is enabled.
type pionLogger struct {
	s *zap.SugaredLogger
}

func (p pionLogger) Trace(msg string)                  { p.s.Debug(msg) }
func (p pionLogger) Tracef(format string, args ...any) { p.s.Debugf(format, args...) }
func (p pionLogger) Debug(msg string)                  { p.s.Debug(msg) }
func (p pionLogger) Debugf(format string, args ...any) { p.s.Debugf(format, args...) }
func (p pionLogger) Info(msg string)                   { p.s.Debug(msg) }
func (p pionLogger) Infof(format string, args ...any)  { p.s.Debugf(format, args...) }
func (p pionLogger) Warn(msg string)                   { p.s.Warn(msg) }
func (p pionLogger) Warnf(format string, args ...any)  { p.s.Warnf(format, args...) }
func (p pionLogger) Error(msg string)                  { p.s.Error(msg) }
func (p pionLogger) Errorf(format string, args ...any) { p.s.Errorf(format, args...) }
