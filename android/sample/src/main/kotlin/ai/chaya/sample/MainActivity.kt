// The sample's only screen: a completion streamed into a TextView.

package ai.chaya.sample

import ai.chaya.ChayaModel
import ai.chaya.loadAsset
import android.os.Bundle
import android.widget.ScrollView
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.lifecycle.lifecycleScope
import kotlinx.coroutines.launch
import uniffi.chaya.ChayaException
import uniffi.chaya.GenerateOptions

/** The model file in the app's assets (android/sample/build.gradle.kts adds ../../models). */
private const val MODEL_ASSET = "chaya-tiny-random.safetensors"

/** Loads the model from assets, then streams a completion of [PROMPT] into a text view. */
class MainActivity : ComponentActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val text = TextView(this).apply { setPadding(32, 32, 32, 32); textSize = 18f }
        setContentView(ScrollView(this).apply { addView(text) })

        // lifecycleScope: leaving the activity cancels the collection, which cancels generation.
        lifecycleScope.launch {
            try {
                ChayaModel.loadAsset(this@MainActivity, MODEL_ASSET).use { model ->
                    text.text = PROMPT
                    model.generate(PROMPT, GenerateOptions(maxTokens = 200u)).collect { piece -> text.append(piece) }
                }
            } catch (e: ChayaException) {
                text.append("\n\n[${e.message}]")
            }
        }
    }

    private companion object {
        const val PROMPT = "Once upon a time"
    }
}
