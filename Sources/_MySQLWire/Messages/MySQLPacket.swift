import NIOCore

/// One logical packet of the MySQL protocol: its payload (the fragments of a payload of
/// 16 MiB − 1 bytes or more already joined) and the sequence id of its last fragment.
public struct MySQLPacket: Sendable, Hashable {
    /// The sequence id of the (last fragment of the) packet.
    public var sequenceID: UInt8
    /// The payload.
    public var payload: ByteBuffer

    /// Creates a packet.
    public init(sequenceID: UInt8, payload: ByteBuffer) {
        self.sequenceID = sequenceID
        self.payload = payload
    }

    /// The first byte of the payload, which tells OK (0x00), ERR (0xFF), EOF (0xFE) apart.
    var header: UInt8? { payload.getInteger(at: payload.readerIndex, as: UInt8.self) }

    /// An OK packet: header 0x00 and at least 7 bytes.
    var isOK: Bool { header == 0x00 && payload.readableBytes >= 7 }
    /// An error packet.
    var isError: Bool { header == 0xFF }
    /// An EOF packet: header 0xFE and fewer than 9 bytes (a row starting with 0xFE is longer).
    var isEOF: Bool { header == 0xFE && payload.readableBytes < 9 }

    /// The largest payload of one fragment, 16 MiB − 1.
    public static let maximumFragmentLength = 0xFF_FFFF
}

/// The capability flags of the handshake.
public struct MySQLCapabilities: OptionSet, Sendable, Hashable {
    /// The raw flags.
    public var rawValue: UInt32
    /// Creates flags.
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Long passwords (MariaDB: bit 0 cleared means "MariaDB server").
    public static let longPassword = Self(rawValue: 1)
    /// Affected rows count found rows.
    public static let foundRows = Self(rawValue: 1 << 1)
    /// Longer column flags.
    public static let longFlag = Self(rawValue: 1 << 2)
    /// A database name in the handshake response.
    public static let connectWithDB = Self(rawValue: 1 << 3)
    /// `LOAD DATA LOCAL` (never set by this client).
    public static let localFiles = Self(rawValue: 1 << 7)
    /// The 4.1 protocol.
    public static let protocol41 = Self(rawValue: 1 << 9)
    /// TLS upgrade.
    public static let ssl = Self(rawValue: 1 << 11)
    /// Transaction status flags.
    public static let transactions = Self(rawValue: 1 << 13)
    /// 4.1 authentication.
    public static let secureConnection = Self(rawValue: 1 << 15)
    /// Several statements per COM_QUERY (never set by this client).
    public static let multiStatements = Self(rawValue: 1 << 16)
    /// Several result sets (for stored procedures).
    public static let multiResults = Self(rawValue: 1 << 17)
    /// Several result sets for prepared statements.
    public static let psMultiResults = Self(rawValue: 1 << 18)
    /// Authentication plugins.
    public static let pluginAuth = Self(rawValue: 1 << 19)
    /// Connection attributes.
    public static let connectAttributes = Self(rawValue: 1 << 20)
    /// A length-encoded auth response.
    public static let pluginAuthLengthEncodedClientData = Self(rawValue: 1 << 21)
    /// Session state tracking.
    public static let sessionTrack = Self(rawValue: 1 << 23)
    /// OK instead of EOF (never set by this client).
    public static let deprecateEOF = Self(rawValue: 1 << 24)
}

/// MariaDB's extended capability flags (bits 32–63 of the capabilities, shifted down by 32): the
/// last 4 of the greeting's reserved bytes and of the handshake response's filler, used only
/// when the server does not set `CLIENT_MYSQL` (bit 0, ``MySQLCapabilities/longPassword``).
public struct MySQLMariaDBCapabilities: OptionSet, Sendable, Hashable {
    /// The raw flags (capability bit 32 is bit 0 here).
    public var rawValue: UInt32
    /// Creates flags.
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `MARIADB_CLIENT_CACHE_METADATA` (bit 36, MariaDB 10.6+): the column count of a binary
    /// result set is followed by a byte telling whether the column definitions follow; the
    /// server skips them while they are unchanged since the prepare or the last execute.
    public static let cacheMetadata = Self(rawValue: 1 << 4)
}

/// The server status flags of OK and EOF packets.
public struct MySQLServerStatus: OptionSet, Sendable, Hashable {
    /// The raw flags.
    public var rawValue: UInt16
    /// Creates flags.
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// A transaction is open.
    public static let inTransaction = Self(rawValue: 1)
    /// Autocommit is on.
    public static let autocommit = Self(rawValue: 2)
    /// Another result set follows.
    public static let moreResultsExist = Self(rawValue: 8)
}
