using System.Runtime.InteropServices;

namespace NameRnn.Coordinator.Training;

/// <summary>
/// The CPU priority (Unix nice value) of every thread of this process. Linux keeps it per thread, and a
/// new thread starts with its creator's, so setting it on every thread there is now covers the ones that
/// come later too. Elsewhere it does nothing.
/// </summary>
public static class ProcessPriority
{
    private const int PrioProcess = 0;

    [DllImport("libc", SetLastError = true)]
    private static extern int setpriority(int which, int who, int priority);

    [DllImport("libc", SetLastError = true)]
    private static extern int getpriority(int which, int who);

    /// <summary>The nice value of the calling thread (0 where it cannot be read).</summary>
    public static int Current => OperatingSystem.IsLinux() ? getpriority(PrioProcess, 0) : 0;

    /// <summary>Sets the nice value of every thread; false when not on Linux or when a thread refused (raising priority needs privileges).</summary>
    public static bool Set(int nice)
    {
        if (!OperatingSystem.IsLinux()) return false;
        var all = true;
        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
            if (int.TryParse(Path.GetFileName(task), out var tid) && setpriority(PrioProcess, tid, nice) != 0)
                all = false;
        return all;
    }
}
