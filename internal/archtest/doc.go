// Package archtest holds the import test: which packages of the module may
// import which (see docs/architecture.md). It has no code of its own.
package archtest
