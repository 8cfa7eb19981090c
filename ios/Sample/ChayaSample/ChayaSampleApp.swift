// The sample app's entry point. Not part of the package: add this folder to an iOS app target in
// Xcode, with the local package ios/ as a dependency (see README "Mobile").

import SwiftUI

/// A one-window app showing `ContentView`.
@main
struct ChayaSampleApp: App {
    var body: some Scene {
        WindowGroup {
            ContentView()
        }
    }
}
