// A one-screen app: loads the model shipped as an asset and streams a completion into a TextView.
plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "ai.chaya.sample"
    compileSdk = 35

    defaultConfig {
        applicationId = "ai.chaya.sample"
        minSdk = 24
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        // The ABIs android/build-rust.sh builds libchaya_uniffi.so for: without
        // this filter, JNA's x86 library would make the APK install on 32-bit x86
        // devices, where loading chaya then fails.
        ndk {
            abiFilters += listOf("arm64-v8a", "armeabi-v7a", "x86_64")
        }
    }

    sourceSets {
        getByName("main") {
            // The repository's models/ folder: chaya-tiny-random.safetensors (random weights) is
            // committed; put a converted model there and set MODEL_ASSET in MainActivity to use it.
            assets.srcDir("../../models")
        }
    }

    androidResources {
        // Stored, not deflated: the one-time copy out of the APK is a plain read.
        noCompress += "safetensors"
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(org.jetbrains.kotlin.gradle.dsl.JvmTarget.JVM_17)
    }
}

dependencies {
    implementation(project(":chaya"))
    implementation("androidx.activity:activity-ktx:1.9.3")
    implementation("androidx.lifecycle:lifecycle-runtime-ktx:2.8.7")
}
