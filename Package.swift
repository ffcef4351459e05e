// swift-tools-version:6.1
import PackageDescription

// One target per layer (see README "Architecture"): the import graph is the architecture.
//   SessionStorage           core: the storage contract, key naming, index codec, errors, metrics, memory store
//   _RedisWire, _MemcachedWire   in-house wire clients, knowing nothing of sessions
//   *SessionStorage          thin backends mapping the four operations onto a client
//   RestySession             the session core (cookies, crypto, timeouts) on the storage protocol only
//   SessionStorageConformance    the one conformance suite every backend runs (test support)

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "swift-resty-session",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SessionStorage", targets: ["SessionStorage"]),
        .library(name: "_RedisWire", targets: ["_RedisWire"]),
        .library(name: "RedisSessionStorage", targets: ["RedisSessionStorage"]),
        .library(name: "RedisClusterSessionStorage", targets: ["RedisClusterSessionStorage"]),
        .library(name: "_MemcachedWire", targets: ["_MemcachedWire"]),
        .library(name: "MemcachedSessionStorage", targets: ["MemcachedSessionStorage"]),
        .library(name: "PostgresSessionStorage", targets: ["PostgresSessionStorage"]),
        .library(name: "_MySQLWire", targets: ["_MySQLWire"]),
        .library(name: "MySQLSessionStorage", targets: ["MySQLSessionStorage"]),
        .library(name: "RestySession", targets: ["RestySession"]),
        .library(name: "SessionStorageConformance", targets: ["SessionStorageConformance"]),
        .library(name: "SessionStorageURL", targets: ["SessionStorageURL"]),
        .library(name: "HummingbirdRestySession", targets: ["HummingbirdRestySession"]),
        .library(name: "VaporRestySession", targets: ["VaporRestySession"]),
        .executable(name: "session-example", targets: ["SessionExample"]),
        .executable(name: "session-demo", targets: ["SessionDemo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.30.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.9.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.3.0"),
    ],
    targets: [
        // MARK: core
        .target(
            name: "SessionStorage",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SessionStorageConformance",
            dependencies: ["SessionStorage"],
            swiftSettings: swiftSettings
        ),

        // MARK: shared by the wire clients
        .target(
            name: "_PoolLease",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: Redis
        .target(
            name: "_RedisWire",
            dependencies: [
                "_PoolLease",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RedisSessionStorage",
            dependencies: [
                "SessionStorage",
                "_RedisWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        .target(
            name: "RedisClusterSessionStorage",
            dependencies: ["SessionStorage", "_RedisWire", "RedisSessionStorage"],
            swiftSettings: swiftSettings
        ),

        // MARK: Memcached
        .target(
            name: "_MemcachedWire",
            dependencies: [
                "_PoolLease",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "MemcachedSessionStorage",
            dependencies: [
                "SessionStorage",
                "_MemcachedWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: PostgreSQL
        .target(
            name: "PostgresSessionStorage",
            dependencies: [
                "SessionStorage",
                "_PoolLease",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: MySQL / MariaDB
        .target(
            name: "_MySQLWire",
            dependencies: [
                "_PoolLease",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "MySQLSessionStorage",
            dependencies: [
                "SessionStorage", "_MySQLWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: session core
        .target(name: "CRestySessionShims"),
        .target(
            name: "RestySession",
            dependencies: [
                "SessionStorage",
                "CRestySessionShims",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: configuration: a store from a URL
        .target(
            name: "SessionStorageURL",
            dependencies: [
                "SessionStorage", "RedisSessionStorage", "RedisClusterSessionStorage", "MemcachedSessionStorage",
                "MySQLSessionStorage", "PostgresSessionStorage",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: framework adapters (on the session core and the storage protocol only)
        .target(
            name: "HummingbirdRestySession",
            dependencies: [
                "RestySession", "SessionStorage",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: swiftSettings
        ),

        .target(
            name: "VaporRestySession",
            dependencies: [
                "RestySession", "SessionStorage",
                .product(name: "Vapor", package: "vapor"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: executables
        .executableTarget(
            name: "SessionDemo",
            dependencies: [
                "HummingbirdRestySession", "RestySession", "SessionStorage", "SessionStorageURL",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "SessionExample",
            dependencies: ["SessionStorage"],
            swiftSettings: swiftSettings
        ),

        // MARK: tests
        .testTarget(
            name: "SessionStorageTests",
            dependencies: [
                "SessionStorage", "SessionStorageConformance",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ServiceSmokeTests",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RedisWireTests",
            dependencies: [
                "_RedisWire",
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RedisSessionStorageTests",
            dependencies: [
                "RedisSessionStorage",
                "SessionStorageConformance",
                "_RedisWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RedisClusterSessionStorageTests",
            dependencies: ["RedisClusterSessionStorage", "SessionStorageConformance", "_RedisWire"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MemcachedWireTests",
            dependencies: [
                "_MemcachedWire",
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MemcachedSessionStorageTests",
            dependencies: [
                "MemcachedSessionStorage",
                "SessionStorageConformance",
                "_MemcachedWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PostgresSessionStorageTests",
            dependencies: [
                "PostgresSessionStorage",
                "_PoolLease",
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
                "SessionStorageConformance",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["Vectors"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MySQLWireTests",
            dependencies: [
                "_MySQLWire",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MySQLSessionStorageTests",
            dependencies: [
                "MySQLSessionStorage", "SessionStorageConformance", "_MySQLWire",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SessionStorageURLTests",
            dependencies: [
                "SessionStorageURL", "SessionStorage", "RedisSessionStorage", "RedisClusterSessionStorage",
                "MemcachedSessionStorage", "MySQLSessionStorage", "PostgresSessionStorage",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "AdapterTestSupport",
            dependencies: [
                "RestySession", "SessionStorage", "RedisSessionStorage",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/AdapterTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HummingbirdRestySessionTests",
            dependencies: [
                "AdapterTestSupport",
                "HummingbirdRestySession", "RestySession", "SessionStorage", "RedisSessionStorage",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "VaporRestySessionTests",
            dependencies: [
                "AdapterTestSupport",
                "VaporRestySession", "RestySession", "SessionStorage", "RedisSessionStorage",
                .product(name: "Vapor", package: "vapor"),
                .product(name: "VaporTesting", package: "vapor"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RestySessionTests",
            dependencies: [
                "RestySession",
                "SessionStorageConformance",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
