// The custom domain's binding again, now with its certificate (a resource cannot be declared twice in one
// template, hence this module).

param siteName string
param hostName string
param thumbprint string

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: siteName
}

resource binding 'Microsoft.Web/sites/hostNameBindings@2024-04-01' = {
  parent: site
  name: hostName
  properties: {
    siteName: siteName
    hostNameType: 'Verified'
    customHostNameDnsRecordType: 'CName'
    sslState: 'SniEnabled'
    thumbprint: thumbprint
  }
}
