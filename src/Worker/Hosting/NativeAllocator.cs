using System.Runtime.InteropServices;

namespace NameRnn.Worker.Hosting;

/// <summary>
/// Settings of glibc's allocator for a worker process, whose TorchSharp tensors come from it. By default
/// glibc serves a block above its (adaptive) mmap threshold with a fresh mapping and returns the top of the
/// heap to the system as it frees, so a worker's steps kept mapping, zeroing and unmapping pages: page
/// faults and unmapping took about 3.5 % of a worker's compute thread. Measured in the fourteenth session,
/// cluster of 2 worker processes at global batch 256, three alternating 16-epoch runs, median names/s of
/// epochs 4-16: 78.0k / 63.5k / 74.4k with these settings against 70.4k / 62.3k / 62.9k without. (Local
/// mode, whose workers share one process, measured the same either way, so it keeps the defaults.)
/// </summary>
public static class NativeAllocator
{
    private const int TrimThreshold = -1;  // M_TRIM_THRESHOLD
    private const int TopPad = -2;         // M_TOP_PAD
    private const int MmapThreshold = -3;  // M_MMAP_THRESHOLD

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int Mallopt(int parameter, int value);

    /// <summary>
    /// Serves blocks up to 32 MiB (glibc's largest threshold) from the heap, keeps up to 1 GiB of freed
    /// memory at the heap's top instead of returning it, and grows the heap 64 MiB at a time. Memory the
    /// process never touched costs nothing, so the resident set stays what the run needs. False where
    /// glibc's mallopt is not there (another OS or C library); nothing changes then.
    /// </summary>
    public static bool Tune()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            return Mallopt(MmapThreshold, 32 * 1024 * 1024) == 1
                   & Mallopt(TrimThreshold, 1024 * 1024 * 1024) == 1
                   & Mallopt(TopPad, 64 * 1024 * 1024) == 1;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }
}
