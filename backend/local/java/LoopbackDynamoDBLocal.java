// Starts DynamoDB Local from its own library with its HTTP connector bound to one address (DynamoDB Local
// has no option for that: its ServerRunner listens on every interface). Usage:
//   java -cp DynamoDBLocal.jar:DynamoDBLocal_lib/* LoopbackDynamoDBLocal.java <address> <DynamoDB Local args>
// The arguments after the address are DynamoDB Local's own (-port, -inMemory, -dbPath, -sharedDb ...).
import java.lang.reflect.Field;
import java.util.Arrays;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

public final class LoopbackDynamoDBLocal {
    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: LoopbackDynamoDBLocal <address> [DynamoDB Local options]");
            System.exit(2);
        }
        String address = args[0];
        DynamoDBProxyServer proxy =
            ServerRunner.createServerFromCommandLineArgs(Arrays.copyOfRange(args, 1, args.length));
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        Connector[] connectors = server.getConnectors();
        if (connectors.length == 0) {
            throw new IllegalStateException("DynamoDB Local made no connector to bind");
        }
        for (Connector connector : connectors) {
            if (!(connector instanceof ServerConnector)) {
                throw new IllegalStateException("unexpected connector " + connector.getClass().getName());
            }
            ((ServerConnector) connector).setHost(address);  // fail closed: an unknown kind stops start-up
        }
        proxy.start();
        System.out.println("DynamoDB Local listening on " + address + " only");
        proxy.join();
    }
}
