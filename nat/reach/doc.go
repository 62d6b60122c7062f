// Package reach holds the reachability verdict of a node: is it reachable
// from the internet, as other nodes dialling back to it have found? Tracker
// is a pure, damped tracker of dial-back outcomes; Verdict is what it
// concludes and why.
//
// It does no I/O and never reads the clock, so that the node and the
// simulator can run the same rules; that is also why it is a package of its
// own, free of the network machinery of the other nat subpackages.
package reach
