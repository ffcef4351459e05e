// Placeholder: this target is built in its own issue.
