using Akka.Cluster.Hosting;
using Akka.Hosting;
using Akka.Logger.Serilog;
using Akka.Remote.Hosting;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using NameRnn.Contracts;

namespace NameRnn.Worker.Hosting;

/// <summary>Where a cluster node listens and how it finds the cluster.</summary>
/// <remarks><see cref="PublicHostname"/> is the name others reach the node by when it differs from the address it binds (containers: bind 0.0.0.0, be reached as the service name).</remarks>
public sealed record ClusterNodeOptions(string Role, string Hostname, int Port, IReadOnlyList<string> SeedNodes, int MaxFrameSize, string? PublicHostname = null)
{
    /// <summary>TLS for the remote transport: every node presents this certificate; null = plain TCP.</summary>
    public TlsOptions? Tls { get; init; }
}

/// <summary>The TLS options of every cluster node (coordinator and worker), bound as an option group.</summary>
public sealed class TlsSettings
{
    [Option("--tls-certificate", "cluster mode: TLS for the remote transport with this PKCS#12 (.pfx) certificate; the same kind on every node", Value = "PATH")]
    public string? Certificate { get; set; }

    [Option("--tls-password", "the password of the --tls-certificate file (default: none)", Value = "TEXT")]
    [System.Text.Json.Serialization.JsonIgnore]
    public string Password { get; set; } = "";

    [Option("--tls-insecure", "accept peers' certificates without validating their chain (self-signed certificates)", Value = "")]
    public bool Insecure { get; set; }

    /// <summary>The TLS to use, or null for plain TCP.</summary>
    public TlsOptions? Options() => string.IsNullOrEmpty(Certificate) ? null : new TlsOptions(Certificate, Password, Insecure);
}

/// <summary>
/// A PKCS#12 certificate (with its private key) for the remote transport. <see cref="Insecure"/>
/// skips the validation of the peer's certificate chain, for self-signed certificates.
/// </summary>
public sealed record TlsOptions(string CertificatePath, string Password, bool Insecure)
{
    public X509Certificate2 Load()
    {
        if (!File.Exists(CertificatePath))
            throw new UsageException($"option --tls-certificate: '{CertificatePath}' does not exist: expected a PKCS#12 (.pfx) file with the node's certificate and key");
        try
        {
            return X509CertificateLoader.LoadPkcs12FromFile(CertificatePath, Password);
        }
        catch (CryptographicException e)
        {
            throw new UsageException($"option --tls-certificate: cannot read '{CertificatePath}' with the password given (--tls-password): {e.Message}");
        }
    }
}

/// <summary>The Akka.Hosting configuration every NameRnn node shares.</summary>
public static class NameRnnHosting
{
    public const string SystemName = "namernn";
    public const string CoordinatorRole = "coordinator";
    public const string WorkerRole = "worker";
    public const string CoordinatorName = "coordinator";

    /// <summary>The default remote frame size: room for the parameters of a GRU with 1 024 hidden units.</summary>
    public const int DefaultMaxFrameSize = 16 * 1024 * 1024;

    /// <summary>The TorchSharp dispatcher (see <see cref="TorchDispatcher.Hocon"/> for <paramref name="localThreads"/> and <paramref name="clusterNice"/>) and Serilog as Akka's logger.</summary>
    public static AkkaConfigurationBuilder AddNameRnnDefaults(this AkkaConfigurationBuilder akka, int? localThreads, int clusterNice = TorchDispatcher.WorkerNice) => akka
        .AddHocon(TorchDispatcher.Hocon(localThreads, clusterNice), HoconAddMode.Append)
        .AddHocon($"""
            akka.stdout-loglevel = WARNING
            akka.stdout-logger-class = "{typeof(StandardErrorLogger).AssemblyQualifiedName}"
            """, HoconAddMode.Append)
        .ConfigureLoggers(loggers =>
        {
            loggers.ClearLoggers();
            loggers.AddLogger<SerilogLogger>();
        });

    /// <summary>Binds every <see cref="INameRnnMessage"/> to the binary <see cref="NameRnnSerializer"/>.</summary>
    public static AkkaConfigurationBuilder AddNameRnnSerialization(this AkkaConfigurationBuilder akka) =>
        akka.WithCustomSerializer("namernn", [typeof(INameRnnMessage)], system => new NameRnnSerializer(system));

    /// <summary>
    /// Remoting over TCP with the same frame size on every node and clustering with the node's role.
    /// There is no automatic downing: the coordinator itself downs a worker node that stays
    /// unreachable (after giving its work to the others), and a worker node that loses the
    /// coordinator shuts down; so a dead worker can never take the coordinator down with it.
    /// </summary>
    public static AkkaConfigurationBuilder AddNameRnnCluster(this AkkaConfigurationBuilder akka, ClusterNodeOptions options) => akka
        .WithRemoting(Remoting(options))
        .WithClustering(new ClusterOptions
        {
            Roles = [options.Role],
            SeedNodes = options.SeedNodes.ToArray(),
        })
        .AddHocon("""
            akka.remote.dot-netty.tcp.batching.enabled = false
            akka.cluster.downing-provider-class = ""
            akka.cluster.shutdown-after-unsuccessful-join-seed-nodes = 60s
            akka.coordinated-shutdown.exit-clr = off
            """, HoconAddMode.Append)
        .AddNameRnnSerialization();

    private static RemoteOptions Remoting(ClusterNodeOptions options)
    {
        var remote = new RemoteOptions
        {
            HostName = options.Hostname,
            PublicHostName = string.IsNullOrEmpty(options.PublicHostname) ? null : options.PublicHostname,
            Port = options.Port,
            MaxFrameSize = options.MaxFrameSize,
            SendBufferSize = options.MaxFrameSize,
            ReceiveBufferSize = options.MaxFrameSize,
        };
        if (options.Tls is { } tls)
        {
            remote.EnableSsl = true;
            remote.Ssl = new SslOptions
            {
                X509Certificate = tls.Load(),
                SuppressValidation = tls.Insecure,
                ValidateCertificateHostname = false,
            };
        }
        return remote;
    }

    /// <summary>The bytes one parameter or gradient message needs: the float payload plus room for the names and the header.</summary>
    public static long RequiredFrameSize(int parameterCount, int namesPerMessage) =>
        (long)parameterCount * sizeof(float) + 64 * 1024 + (long)namesPerMessage * 256;
}
