// DynamoDB Local on 127.0.0.1 only. AWS's jar (its main: ServerRunner) binds its Jetty
// connector to every interface and has no option to choose one. This does what that main
// does (read the options, create the server, start it), except that it sets the host of
// the server's connectors to 127.0.0.1 first, by reflection on the private field
// DynamoDBProxyServer.server (a Jetty 12 Server). livecount compiles it once with javac
// into its cache, next to the jar (server/aws/local.py); it is run with the jar on the
// class path and the jar's own options (-port, -dbPath or -inMemory, -sharedDb,
// -disableTelemetry). If a future jar renames the field, this exits 3 with one line, and
// livecount says so rather than running a store open to the network.
import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.AbstractNetworkConnector;
import org.eclipse.jetty.server.Server;
import software.amazon.dynamodb.services.local.main.CommandLineInput;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public final class LoopbackDynamoDBLocal {
    private static final String HOST = "127.0.0.1";

    public static void main(String[] args) throws Exception {
        CommandLineInput input = new CommandLineInput(args);
        if (!input.init()) {
            System.exit(2); // -help, or options it refused (it printed why)
        }
        DynamoDBProxyServer proxy = ServerRunner.createServer(input);
        Server server;
        try {
            Field field = DynamoDBProxyServer.class.getDeclaredField("server");
            field.setAccessible(true);
            server = (Server) field.get(proxy);
        } catch (ReflectiveOperationException | ClassCastException e) {
            System.err.println("livecount-loopback: this DynamoDB Local has no Jetty server field: " + e);
            System.exit(3);
            return;
        }
        Connector[] connectors = server.getConnectors();
        if (connectors.length == 0) {
            System.err.println("livecount-loopback: this DynamoDB Local has no connector to bind");
            System.exit(3);
        }
        for (Connector connector : connectors) {
            if (!(connector instanceof AbstractNetworkConnector)) {
                System.err.println("livecount-loopback: not a network connector: " + connector);
                System.exit(3);
            }
            ((AbstractNetworkConnector) connector).setHost(HOST);
        }
        proxy.start();
        if (!server.isStarted()) {
            System.exit(1); // it printed why (the port is taken, most likely)
        }
        System.out.println("livecount-loopback: listening on " + HOST + ":" + input.getPort());
    }
}
