/// A session property exposed as an HTTP header, as lua-resty-session's `request_headers` /
/// `response_headers` options do (`Session-Id`, `Session-Timeout`, …).
public enum SessionHeader: String, Sendable, Hashable, CaseIterable {
    /// `Session-Id`: the base64url session id.
    case id
    /// `Session-Audience`.
    case audience
    /// `Session-Subject`.
    case subject
    /// `Session-Timeout`: seconds until the closest timeout.
    case timeout
    /// `Session-Idling-Timeout`: seconds left of the idling timeout.
    case idlingTimeout = "idling-timeout"
    /// `Session-Rolling-Timeout`: seconds left of the rolling timeout.
    case rollingTimeout = "rolling-timeout"
    /// `Session-Absolute-Timeout`: seconds left of the absolute timeout.
    case absoluteTimeout = "absolute-timeout"

    /// The header's name.
    public var headerName: String {
        switch self {
        case .id: "Session-Id"
        case .audience: "Session-Audience"
        case .subject: "Session-Subject"
        case .timeout: "Session-Timeout"
        case .idlingTimeout: "Session-Idling-Timeout"
        case .rollingTimeout: "Session-Rolling-Timeout"
        case .absoluteTimeout: "Session-Absolute-Timeout"
        }
    }
}
