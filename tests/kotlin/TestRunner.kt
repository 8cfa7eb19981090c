// The test runner shared by the Kotlin suites (tests/kotlin/Main.kt and
// tests/mobile/kotlin/WrapperTest.kt): runs named tests in order, prints each
// result with its time, ends with "<suite>: N passed, N failed".

package chaya.testing

import kotlin.system.exitProcess

/** Fails the running test with [message] unless [condition] holds. */
fun check(condition: Boolean, message: () -> String) {
    if (!condition) throw AssertionError(message())
}

/** Runs every test of [tests], then [cleanup]; exits 0 when all passed, 1 otherwise. */
fun runTests(suite: String, tests: Map<String, () -> Unit>, cleanup: () -> Unit = {}): Nothing {
    var passed = 0
    var failed = 0
    for ((name, test) in tests) {
        val start = System.nanoTime()
        val elapsed = { "%.2f s".format((System.nanoTime() - start) / 1e9) }
        try {
            test()
            passed++
            println("ok   $name (${elapsed()})")
        } catch (e: Throwable) {
            failed++
            println("FAIL $name (${elapsed()}): $e")
            e.printStackTrace()
        }
    }
    cleanup()
    println("$suite: $passed passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
