// The chaya Android library: the uniffi Kotlin bindings (bindings/kotlin, package
// uniffi.chaya), the coroutine wrapper (src/main/kotlin, package ai.chaya) and the
// native libchaya_uniffi.so per ABI in src/main/jniLibs (made by ../build-rust.sh).
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
    `maven-publish`
}

android {
    namespace = "ai.chaya"
    compileSdk = 35

    defaultConfig {
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets {
        getByName("main") {
            // The generated bindings are used in place, never copied.
            java.srcDir("../../bindings/kotlin")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    publishing {
        singleVariant("release") {
            withSourcesJar()
        }
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(org.jetbrains.kotlin.gradle.dsl.JvmTarget.JVM_17)
    }
}

dependencies {
    // uniffi's Kotlin calls the native library through JNA; the AAR carries JNA's own .so files.
    api("net.java.dev.jna:jna:5.17.0@aar")
    api("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.10.2")
}

// `./gradlew :chaya:publishToMavenLocal` (or `publish` with a repository added below)
// publishes ai.chaya:chaya:<version> as an AAR with its POM dependencies.
publishing {
    publications {
        register<MavenPublication>("release") {
            groupId = "ai.chaya"
            artifactId = "chaya"
            version = "0.1.0"
            afterEvaluate { from(components["release"]) }
        }
    }
}
