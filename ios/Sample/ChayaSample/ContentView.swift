// The sample's only screen: a completion streamed into a text view.

import Chaya
import SwiftUI

/// Loads the model shipped in the app bundle, then streams a completion of `prompt` into the view.
/// Leaving the view cancels the `.task`, which cancels generation.
struct ContentView: View {
    /// The model resource in the app bundle (add chaya-tiny-random.safetensors from models/, or a
    /// converted model, to the app target's "Copy Bundle Resources").
    private let modelResource = "chaya-tiny-random"
    private let prompt = "Once upon a time"
    @State private var text = ""

    var body: some View {
        ScrollView {
            Text(text)
                .frame(maxWidth: .infinity, alignment: .leading)
                .padding()
        }
        .task {
            do {
                let model = try await ChayaModel.load(resource: modelResource)
                text = prompt
                for try await piece in model.generate(prompt, options: GenerateOptions(maxTokens: 200)) {
                    text += piece
                }
            } catch {
                text += "\n\n[\(error.localizedDescription)]"
            }
        }
    }
}
