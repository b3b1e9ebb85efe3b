package agent

import "github.com/swarmship/swarmship/internal/btclient"

// RedactLoggerForTest lets the external tests drive the log redaction.
var RedactLoggerForTest = redactLogger

// ServeBudgetForTest is the agent's budget of peer request data.
func (a *Agent) ServeBudgetForTest() *btclient.ServeBudget { return a.serve }
