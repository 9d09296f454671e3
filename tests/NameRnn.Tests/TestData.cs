using System.IO.Compression;
using NameRnn.Coordinator.Cli;

namespace NameRnn.Tests;

/// <summary>Where the real data set and scratch folders are, and how to run the program in-process.</summary>
public static class TestData
{
    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>The shared copy of the tutorial's 18 files, beside the project (NAMERNN_TEST_DATA overrides).</summary>
    public static string NamesFolder { get; } =
        Environment.GetEnvironmentVariable("NAMERNN_TEST_DATA") is { Length: > 0 } custom
            ? custom
            : Path.GetFullPath(Path.Combine(RepositoryRoot, "..", "shared", "data", "names"));

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "NameRnn.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("NameRnn.sln not found above " + AppContext.BaseDirectory);
    }

    /// <summary>A self-signed certificate with its key, as a PKCS#12 file in <paramref name="folder"/> with the password "pw".</summary>
    public static async Task<string> SelfSignedPfxAsync(string folder)
    {
        var pfx = Path.Combine(folder, "node.pfx");
        using var key = System.Security.Cryptography.RSA.Create(2048);
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=namernn-test", key,
            System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.RSASignaturePadding.Pkcs1);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        await File.WriteAllBytesAsync(pfx, certificate.Export(System.Security.Cryptography.X509Certificates.X509ContentType.Pkcs12, "pw"));
        return pfx;
    }

    public static string TempFolder()
    {
        var path = Path.Combine(Path.GetTempPath(), "namernn-tests", Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>A zip laid out like the tutorial's data.zip (data/names/*.txt) made from the shared files.</summary>
    public static string TutorialZip(string folder)
    {
        var zip = Path.Combine(folder, "data.zip");
        using var archive = ZipFile.Open(zip, ZipArchiveMode.Create);
        foreach (var file in Directory.GetFiles(NamesFolder, "*.txt").Order(StringComparer.Ordinal))
            archive.CreateEntryFromFile(file, "data/names/" + Path.GetFileName(file));
        return zip;
    }
}

/// <summary>The result of one in-process run of the command-line program.</summary>
public sealed record CliResult(int ExitCode, string Out, string Error);

public static class CliRunner
{
    public static async Task<CliResult> RunAsync(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await App.RunAsync(args, stdout, stderr);
        return new CliResult(code, stdout.ToString(), stderr.ToString());
    }
}
