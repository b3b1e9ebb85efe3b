package agent

// RedactLoggerForTest lets the external tests drive the log redaction.
var RedactLoggerForTest = redactLogger
