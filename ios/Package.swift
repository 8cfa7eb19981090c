// swift-tools-version:5.9
// Chaya for Swift: the uniffi bindings (bindings/swift/chaya.swift) and an async wrapper
// (ChayaModel, ChayaSession) in one module, over the native library `chayaFFI`.
import PackageDescription

#if os(Linux)
// Linux (the package's tests): the system library libchaya_uniffi.so from `cargo build`,
// passed with `swift build -Xlinker -L<dir>` (see tests/mobile/swift.sh).
let chayaFFI: Target = .systemLibrary(name: "chayaFFI", path: "Sources/chayaFFI")
#else
// Apple platforms: the static library for iOS, the simulator and macOS, built by
// ./build-xcframework.sh.
let chayaFFI: Target = .binaryTarget(name: "chayaFFI", path: "chayaFFI.xcframework")
#endif

let package = Package(
    name: "Chaya",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Chaya", targets: ["Chaya"]),
    ],
    targets: [
        chayaFFI,
        // The privacy manifest the App Store asks of SDKs (PrivacyInfo.xcprivacy).
        .target(name: "Chaya", dependencies: ["chayaFFI"], resources: [.copy("PrivacyInfo.xcprivacy")]),
        .testTarget(
            name: "ChayaTests",
            dependencies: ["Chaya"],
            resources: [.copy("chaya-tiny-random.safetensors")]
        ),
    ]
)
