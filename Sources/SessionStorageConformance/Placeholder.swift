// The conformance suite lands here.
