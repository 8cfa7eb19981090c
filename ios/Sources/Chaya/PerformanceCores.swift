// The default compute thread count on a phone.

import Foundation
#if canImport(Darwin)
import Darwin
#endif

/// Most threads `performanceCores()` suggests: a 62M-parameter model gains little beyond it, and
/// the rest keep the UI smooth.
public let maxDefaultThreads = 4

/// The number of compute threads to use on this device: its performance cores, from 1 to
/// `maxDefaultThreads`.
///
/// Apple chips mix performance and efficiency cores; a thread on an efficiency core holds back the
/// others at each step. On Apple platforms the count is `hw.perflevel0.physicalcpu` (the fastest
/// core class: 2 on iPhones, 4 or more on M-series Macs). Where that is unknown (older systems,
/// Linux), half of the active processors (SMT siblings, or cores left to the UI) is used.
public func performanceCores() -> Int {
    #if canImport(Darwin)
    var count: Int32 = 0
    var size = MemoryLayout<Int32>.size
    if sysctlbyname("hw.perflevel0.physicalcpu", &count, &size, nil, 0) == 0, count > 0 {
        return min(Int(count), maxDefaultThreads)
    }
    #endif
    return min(max(ProcessInfo.processInfo.activeProcessorCount / 2, 1), maxDefaultThreads)
}
