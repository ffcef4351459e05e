// swift-tools-version:6.1
import PackageDescription

// Benchmarks live in their own package so the library's build and CI never compile them (or
// Hummingbird, the reference they are compared with). Run them in release builds:
//     swift run -c release --package-path Benchmarks storage-bench --help
// A path dependency's identity is its folder's name, whatever the clone is called.
let rootPackage = String(#filePath.split(separator: "/").dropLast(2).last ?? "main")

let package = Package(
    name: "swift-resty-session-benchmarks",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "storage-bench", targets: ["StorageBench"]),
        .executable(name: "session-bench", targets: ["SessionBench"]),
        .executable(name: "web-bench", targets: ["WebBench"]),
        .executable(name: "vapor-web-bench", targets: ["VaporWebBench"]),
    ],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.1.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
    ],
    targets: [
        .target(name: "CBenchSupport"),
        .target(
            name: "WebBenchSupport",
            dependencies: [
                .product(name: "RestySession", package: rootPackage),
                .product(name: "SessionStorageURL", package: rootPackage),
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),
        .executableTarget(
            name: "StorageBench",
            dependencies: [
                "CBenchSupport",
                .product(name: "SessionStorage", package: rootPackage),
                .product(name: "MemcachedSessionStorage", package: rootPackage),
                .product(name: "PostgresSessionStorage", package: rootPackage),
                .product(name: "RedisSessionStorage", package: rootPackage),
                .product(name: "RedisClusterSessionStorage", package: rootPackage),
                .product(name: "MySQLSessionStorage", package: rootPackage),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),
        .executableTarget(
            name: "SessionBench",
            dependencies: [
                .product(name: "RestySession", package: rootPackage),
                .product(name: "SessionStorage", package: rootPackage),
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),
        .executableTarget(
            name: "WebBench",
            dependencies: [
                "WebBenchSupport",
                .product(name: "HummingbirdRestySession", package: rootPackage),
                .product(name: "RestySession", package: rootPackage),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),
        .executableTarget(
            name: "VaporWebBench",
            dependencies: [
                "WebBenchSupport",
                .product(name: "VaporRestySession", package: rootPackage),
                .product(name: "RestySession", package: rootPackage),
                .product(name: "Vapor", package: "vapor"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
        ),
    ]
)
