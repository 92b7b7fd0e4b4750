// What DBeaver, Metabase and DataGrip do first through the PostgreSQL JDBC driver: connect,
// list tables, views and columns through DatabaseMetaData, run a PreparedStatement with a
// parameter (over a named query's view), be refused a write and go on. Run by
// tests/pg_clients.rs as `java -cp postgresql.jar VigilJdbc.java PORT PASSWORD`.
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

public class VigilJdbc {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/vigil";
        try (Connection c = DriverManager.getConnection(url, "vigil", args[1])) {
            DatabaseMetaData md = c.getMetaData();
            System.out.println("product " + md.getDatabaseProductName());
            try (ResultSet rs = md.getTables(null, null, "%", new String[] {"TABLE", "VIEW"})) {
                while (rs.next()) {
                    System.out.println("table " + rs.getString("TABLE_NAME") + " " + rs.getString("TABLE_TYPE"));
                }
            }
            try (ResultSet rs = md.getColumns(null, null, "health", "%")) {
                while (rs.next()) {
                    System.out.println("column " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME"));
                }
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM health WHERE score >= ? AND account_id <> ?")) {
                ps.setDouble(1, 0.0);
                ps.setString(2, "nobody");
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    System.out.println("count " + rs.getLong(1));
                }
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM complaint_costs WHERE handling_cost >= ?")) {
                ps.setDouble(1, 0.0);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    System.out.println("named " + rs.getLong(1));
                }
            }
            try (Statement s = c.createStatement()) {
                s.execute("DROP TABLE accounts");
                System.out.println("write accepted");
            } catch (SQLException e) {
                System.out.println("refused " + e.getSQLState());
            }
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT 40 + 2")) {
                rs.next();
                System.out.println("after " + rs.getInt(1));
            }
        }
    }
}
