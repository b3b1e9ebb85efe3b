// Command swarmship ships software and media to many sites over BitTorrent,
// with a signed catalog in S3 or a directory. See README.md.
package main

import (
	"os"
	// Time zones inside the binary: an agent's timezone and signage
	// schedules must load on minimal systems without tzdata.
	_ "time/tzdata"

	"github.com/swarmship/swarmship/cmd"
)

func main() {
	os.Exit(cmd.Execute())
}
