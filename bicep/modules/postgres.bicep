// PostgreSQL Flexible Server 16: Entra authentication only, an ops group as its administrator, the app's
// database, the built-in PgBouncer (transaction mode) the app connects through, and either a firewall
// (public mode) or a delegated subnet (private mode).

param name string
param location string
param tags object
param databaseName string
param skuName string
param storageGB int
param backupRetentionDays int
param geoRedundantBackup bool
param highAvailability string
param opsGroupObjectId string
param opsGroupName string
param privateNetwork bool
param delegatedSubnetId string
param privateDnsZoneId string
param opsAllowedIpRanges array
param maximumInstanceCount int
param dbPoolMaxSize int

// Sizes with their default max_connections (Azure's table). Burstable sizes are left out on purpose:
// the built-in PgBouncer does not run on them.
var sizes = {
  Standard_D2ds_v5: {
    tier: 'GeneralPurpose'
    vCores: 2
    maxConnections: 859
  }
  Standard_D4ds_v5: {
    tier: 'GeneralPurpose'
    vCores: 4
    maxConnections: 1719
  }
  Standard_D8ds_v5: {
    tier: 'GeneralPurpose'
    vCores: 8
    maxConnections: 3438
  }
  Standard_E2ds_v5: {
    tier: 'MemoryOptimized'
    vCores: 2
    maxConnections: 1719
  }
  Standard_E4ds_v5: {
    tier: 'MemoryOptimized'
    vCores: 4
    maxConnections: 3438
  }
}
var size = sizes[skuName]

// The PgBouncer arithmetic (README: "PgBouncer arithmetic").
// Clients: every instance has two pools (sync and async) of dbPoolMaxSize connections.
var clientConnections = maximumInstanceCount * 2 * dbPoolMaxSize
// Twice that, for old and new instances overlapping during a deployment or a scale-in.
var maxClientConn = 2 * clientConnections
// Server connections Postgres can give PgBouncer: Azure keeps 15 for itself, and 15 stay free for
// direct connections (migrations, psql, monitoring).
var serverBudget = size.maxConnections - 30
// PgBouncer keeps one pool per (role, database): the app's, and the ops group's when ops connect on 6432.
// Past about 25 busy backends per vCore more connections only add contention; transactions wait in
// PgBouncer instead (pgbouncer.query_wait_timeout).
var defaultPoolSize = min(clientConnections, serverBudget / 2, 25 * size.vCores)

resource server 'Microsoft.DBforPostgreSQL/flexibleServers@2024-08-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: size.tier
  }
  properties: {
    version: '16'
    storage: {
      storageSizeGB: storageGB
      autoGrow: 'Enabled'
    }
    backup: {
      backupRetentionDays: backupRetentionDays
      geoRedundantBackup: geoRedundantBackup ? 'Enabled' : 'Disabled'
    }
    highAvailability: {
      mode: highAvailability
    }
    authConfig: {
      activeDirectoryAuth: 'Enabled'
      passwordAuth: 'Disabled'
      tenantId: tenant().tenantId
    }
    network: privateNetwork ? {
      delegatedSubnetResourceId: delegatedSubnetId
      privateDnsZoneArmResourceId: privateDnsZoneId
      publicNetworkAccess: 'Disabled'
    } : {
      publicNetworkAccess: 'Enabled'
    }
  }
}

// The ops group administers the server; the app identity gets its own role with only the grants it
// needs (python -m shared.cli db app-role, README).
resource administrator 'Microsoft.DBforPostgreSQL/flexibleServers/administrators@2024-08-01' = {
  parent: server
  name: opsGroupObjectId
  properties: {
    principalType: 'Group'
    principalName: opsGroupName
    tenantId: tenant().tenantId
  }
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2024-08-01' = {
  parent: server
  name: databaseName
  properties: {
    charset: 'UTF8'
    collation: 'en_US.utf8'
  }
  dependsOn: [
    administrator
  ]
}

var serverParameters = [
  {
    name: 'pgbouncer.enabled'
    value: 'true'
  }
  {
    name: 'pgbouncer.pool_mode'
    value: 'TRANSACTION'
  }
  {
    name: 'pgbouncer.default_pool_size'
    value: string(defaultPoolSize)
  }
  {
    name: 'pgbouncer.max_client_conn'
    value: string(maxClientConn)
  }
  {
    name: 'require_secure_transport'
    value: 'on'
  }
  {
    name: 'log_connections'
    value: 'on'
  }
  {
    name: 'log_disconnections'
    value: 'on'
  }
  {
    name: 'log_checkpoints'
    value: 'on'
  }
]

// One at a time: the server refuses concurrent parameter updates.
@batchSize(1)
resource serverConfigurations 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2024-08-01' = [for parameter in serverParameters: {
  parent: server
  name: parameter.name
  properties: {
    value: parameter.value
    source: 'user-override'
  }
  dependsOn: [
    database
  ]
}]

// Public mode. Flex Consumption has no fixed outbound addresses, so the app reaches the server through
// the "Azure services" rule (0.0.0.0); Entra-only authentication is what keeps others out.
resource allowAzureServices 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2024-08-01' = if (!privateNetwork) {
  parent: server
  name: 'AllowAllAzureServicesAndResourcesWithinAzureIps'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
  dependsOn: [
    serverConfigurations
  ]
}

@batchSize(1)
resource opsRanges 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2024-08-01' = [for range in (privateNetwork ? [] : opsAllowedIpRanges): {
  parent: server
  name: range.name
  properties: {
    startIpAddress: range.start
    endIpAddress: range.end
  }
  dependsOn: [
    allowAzureServices
  ]
}]

output host string = server.properties.fullyQualifiedDomainName
output pgbouncer object = {
  serverMaxConnections: size.maxConnections
  clientConnections: clientConnections
  maxClientConn: maxClientConn
  defaultPoolSize: defaultPoolSize
}
