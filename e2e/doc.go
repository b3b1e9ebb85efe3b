// Package e2e holds whole-system tests: a catalog, an origin and agents
// assembled in one process by localswarm, driven through their public APIs
// (the tests of each role's internals stay with the role).
package e2e
