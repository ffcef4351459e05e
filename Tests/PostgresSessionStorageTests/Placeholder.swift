// Placeholder: tests arrive with the target's issue.
