package seeder

// SeederKeyForTest is the key the origin's seeder announces with.
func SeederKeyForTest(o *Origin) string { return o.seederKey }
