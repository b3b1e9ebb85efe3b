package policy

// SelfUpdateTarget decides whether an agent running version own should
// replace itself with the version active for its swarmship subscription.
// It returns the version to try, or "" and why not. A process on trial
// never updates itself (its parent decides), and a version that failed
// its trial is not tried again until an operator clears it.
func SelfUpdateTarget(own, active string, bad map[string]string, onTrial bool) (version, why string) {
	switch {
	case active == "":
		return "", "no swarmship release active yet"
	case active == own:
		return "", "up to date"
	case onTrial:
		return "", "on trial"
	}
	if reason, ok := bad[active]; ok {
		return "", "version " + active + " was rolled back: " + reason
	}
	return active, ""
}
