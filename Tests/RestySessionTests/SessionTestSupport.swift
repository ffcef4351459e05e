import Testing
@testable import RestySession
