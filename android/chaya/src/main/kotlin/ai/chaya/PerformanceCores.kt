// The default compute thread count on a phone.

package ai.chaya

import java.io.File

/** Most threads [performanceCores] suggests: a 62M-parameter model gains little beyond it, and the rest keep the UI smooth. */
const val MAX_DEFAULT_THREADS = 4

/**
 * The number of compute threads to use on this device: its performance cores, from 1 to
 * [MAX_DEFAULT_THREADS].
 *
 * Phones mix fast and efficiency cores (big.LITTLE); a thread on an efficiency core holds back
 * the others at each step. The cores are told apart by their maximum frequency
 * (`/sys/devices/system/cpu/cpuN/cpufreq/cpuinfo_max_freq`): every core faster than the slowest
 * class counts. When all cores are alike or the files cannot be read, half of
 * `availableProcessors()` (SMT siblings, or cores left to the UI) is used.
 */
fun performanceCores(): Int {
    val frequencies = File("/sys/devices/system/cpu").listFiles { file -> file.name.matches(Regex("cpu[0-9]+")) }
        ?.mapNotNull { cpu -> runCatching { File(cpu, "cpufreq/cpuinfo_max_freq").readText().trim().toLong() }.getOrNull() }
        .orEmpty()
    return performanceCores(frequencies, Runtime.getRuntime().availableProcessors())
}

/** [performanceCores] given each core's maximum frequency and the available processor count. */
internal fun performanceCores(maxFrequencies: List<Long>, availableProcessors: Int): Int {
    val slowest = maxFrequencies.minOrNull()
    val fast = maxFrequencies.count { slowest != null && it > slowest }
    val cores = if (fast > 0) fast else availableProcessors / 2
    return cores.coerceIn(1, MAX_DEFAULT_THREADS)
}
