package logbridge

import (
	"bytes"
	"log"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// memberlistTag is the subsystem tag memberlist writes after the level prefix.
// The zap logger name already says "memberlist", so the tag is dropped.
const memberlistTag = "memberlist: "

// memberlistLevels maps the level prefixes memberlist v0.7.0 writes to zap
// levels. memberlist spells errors both "[ERR]" and "[ERROR]" depending on the
// file, so both are listed.
var memberlistLevels = []struct {
	prefix string
	level  zapcore.Level
}{
	{"[DEBUG]", zapcore.DebugLevel},
	{"[INFO]", zapcore.InfoLevel},
	{"[WARN]", zapcore.WarnLevel},
	{"[ERR]", zapcore.ErrorLevel},
	{"[ERROR]", zapcore.ErrorLevel},
	// A few lines in memberlist's net.go carry no bracketed level and start
	// with "Err:" instead; they report failures, so they are errors too.
	{"Err:", zapcore.ErrorLevel},
}

// Memberlist returns a standard logger to hand to memberlist.Config.Logger.
// Each line is logged on a child of l named "memberlist", at the zap level
// that matches its "[DEBUG]", "[INFO]", "[WARN]" or "[ERR]"/"[ERROR]" prefix,
// with the prefix and memberlist's own "memberlist: " tag removed. A line with
// no recognised prefix is logged at Info so that nothing is lost.
//
// A nil l yields a logger that discards everything. The returned logger is safe
// for concurrent use, as memberlist logs from many goroutines.
func Memberlist(l *zap.Logger) *log.Logger {
	std, _ := MemberlistQuietable(l)
	return std
}

// MemberlistQuietable is Memberlist with a function that silences the
// logger for good. memberlist's Shutdown does not wait for a probe in
// flight, which may still log a line after it returns: a node calls quiet
// once its memberlist is shut down, so that the line does not reach a
// logger that is gone (a finished test's panics).
func MemberlistQuietable(l *zap.Logger) (std *log.Logger, quiet func()) {
	if l == nil {
		l = zap.NewNop()
	}
	// The caller zap would record is the log package's Output, never the
	// memberlist line that logged, so it is noise and is turned off.
	w := &memberlistWriter{log: l.Named("memberlist").WithOptions(zap.WithCaller(false))}
	// No flags: zap adds its own timestamp, and a prefix would hide the level.
	return log.New(w, "", 0), func() { w.quiet.Store(true) }
}

// memberlistWriter receives one complete line per Write from log.Logger.
type memberlistWriter struct {
	log *zap.Logger
	// quiet drops every line from now on.
	quiet atomic.Bool
}

// Write implements io.Writer. It never fails, so that a logging problem can
// never turn into a memberlist error.
func (w *memberlistWriter) Write(p []byte) (int, error) {
	if w.quiet.Load() {
		return len(p), nil
	}
	level, msg := parseMemberlistLine(p)
	if ce := w.log.Check(level, msg); ce != nil {
		ce.Write()
	}
	return len(p), nil
}

// parseMemberlistLine splits one memberlist log line into its zap level and
// the message without the level prefix, the subsystem tag and the newline.
func parseMemberlistLine(p []byte) (zapcore.Level, string) {
	line := bytes.TrimRight(p, "\r\n")
	level := zapcore.InfoLevel
	for _, l := range memberlistLevels {
		if bytes.HasPrefix(line, []byte(l.prefix)) {
			level = l.level
			line = bytes.TrimLeft(line[len(l.prefix):], " ")
			break
		}
	}
	line = bytes.TrimPrefix(line, []byte(memberlistTag))
	return level, string(line)
}
