// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Ferry",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "ferry", targets: ["ferry"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-http-structured-headers", from: "1.7.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // libevent as Debian ships it (libevent-dev 2.1.12).
        .systemLibrary(
            name: "CLibEvent",
            path: "CLibEvent",
            pkgConfig: "libevent",
            providers: [.apt(["libevent-dev"])]
        ),
        // libc headers the Glibc module leaves out (extended attributes).
        .systemLibrary(name: "CSystem", path: "Sources/CSystem"),
        // SQLite as Debian ships it (libsqlite3-dev 3.40.1): the task store.
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        // The one thing Swift cannot do: interpose evhttp_request_new so that server
        // requests get header and chunk callbacks (streaming) on libevent 2.1.
        .target(name: "CFerryHook", linkerSettings: [.linkedLibrary("dl")]),
        // HTTP over evhttp: streams request bodies to a consumer; knows nothing of uploads.
        .target(name: "FerryHTTP", dependencies: ["CLibEvent", "CFerryHook"]),
        // Uploads: contract, spool, queue, workers, pusher, retry. Knows nothing of HTTP.
        .target(
            name: "FerryCore",
            dependencies: [
                "CSystem", "CSQLite",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "RawStructuredFieldValues", package: "swift-http-structured-headers"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The glue: routes HTTP requests to the upload service.
        .target(
            name: "FerryServer",
            dependencies: [
                "FerryHTTP", "FerryCore", "FerryConsole",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // The web console at /ui/: the files under Sources/FerryConsole/assets, built into
        // the binary by the EmbedConsoleAssets plugin.
        .target(
            name: "FerryConsole", exclude: ["assets"], plugins: [.plugin(name: "EmbedConsoleAssets")]),
        .executableTarget(name: "EmbedAssets"),
        .plugin(name: "EmbedConsoleAssets", capability: .buildTool(), dependencies: ["EmbedAssets"]),
        .executableTarget(
            name: "ferry",
            dependencies: [
                "FerryServer", "FerryCore", "FerryHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "FerryCoreTests", dependencies: ["FerryCore", "FerryServer"]),
        .testTarget(
            name: "FerryIntegrationTests",
            dependencies: ["FerryCore", "CSystem", .product(name: "Crypto", package: "swift-crypto")]),
    ]
)
