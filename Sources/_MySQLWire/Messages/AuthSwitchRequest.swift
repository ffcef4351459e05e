import NIOCore

/// `Protocol::AuthSwitchRequest` (header 0xFE): the server wants another auth plugin.
public struct MySQLAuthSwitchRequest: Sendable, Hashable {
    /// The plugin to switch to.
    public var pluginName: String
    /// Its data (the new scramble), without a trailing NUL.
    public var pluginData: [UInt8]

    /// Creates a request.
    public init(pluginName: String, pluginData: [UInt8]) {
        self.pluginName = pluginName
        self.pluginData = pluginData
    }

    static func decode(_ payload: ByteBuffer) throws -> MySQLAuthSwitchRequest {
        var buffer = payload
        guard buffer.readInteger(as: UInt8.self) == 0xFE, let name = buffer.readNullTerminatedString() else {
            throw MySQLError(.protocolError, message: "malformed auth switch request")
        }
        var data = buffer.readBytes(length: buffer.readableBytes) ?? []
        if data.last == 0 { data.removeLast() }
        return MySQLAuthSwitchRequest(pluginName: name, pluginData: data)
    }
}
