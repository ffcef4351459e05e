/// The (audience, subject) pairs whose per-user index lists a session.
///
/// lua-resty-session passes two arrays of equal length, `audiences` and `subjects`; pair `i`
/// is `(audiences[i], subjects[i])`. Unequal lengths are a caller error, reported by the
/// throwing initializer.
public struct SessionMetadata: Sendable, Hashable {
    /// The audiences, one per pair.
    public let audiences: [String]
    /// The subjects, one per pair.
    public let subjects: [String]

    /// Zips `audiences` and `subjects` into pairs.
    ///
    /// - Throws: ``SessionStoreError/Code/invalidArgument`` when the arrays differ in length,
    ///   or an audience or subject is empty.
    public init(audiences: [String], subjects: [String]) throws {
        guard audiences.count == subjects.count else {
            throw SessionStoreError(
                .invalidArgument,
                message: "metadata has \(audiences.count) audiences but \(subjects.count) subjects"
            )
        }
        guard !audiences.contains(where: \.isEmpty), !subjects.contains(where: \.isEmpty) else {
            throw SessionStoreError(.invalidArgument, message: "metadata audiences and subjects must not be empty")
        }
        self.audiences = audiences
        self.subjects = subjects
    }

    /// Metadata with a single (audience, subject) pair.
    public init(audience: String, subject: String) throws {
        try self.init(audiences: [audience], subjects: [subject])
    }

    /// The pairs, in order.
    public var pairs: [(audience: String, subject: String)] {
        zip(audiences, subjects).map { (audience: $0, subject: $1) }
    }

    /// Whether there are no pairs.
    public var isEmpty: Bool { audiences.isEmpty }
}
