package hcloudfake

// The read-only catalog: server types, images and locations the fake knows.
// Names follow Hetzner Cloud's; sizes are what the real types offer.

type location struct {
	ID          int64   `json:"id"`
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Country     string  `json:"country"`
	City        string  `json:"city"`
	Latitude    float64 `json:"latitude"`
	Longitude   float64 `json:"longitude"`
	NetworkZone string  `json:"network_zone"`
}

type serverTypeLocation struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	Recommended bool      `json:"recommended"`
	Available   bool      `json:"available"`
	Deprecation *struct{} `json:"deprecation"`
}

type serverType struct {
	ID              int64                `json:"id"`
	Name            string               `json:"name"`
	Description     string               `json:"description"`
	Category        string               `json:"category"`
	Cores           int                  `json:"cores"`
	Memory          float32              `json:"memory"`
	Disk            int                  `json:"disk"`
	StorageType     string               `json:"storage_type"`
	CPUType         string               `json:"cpu_type"`
	Architecture    string               `json:"architecture"`
	IncludedTraffic int64                `json:"included_traffic"`
	Prices          []any                `json:"prices"`
	Deprecated      bool                 `json:"deprecated"`
	Deprecation     *struct{}            `json:"deprecation"`
	Locations       []serverTypeLocation `json:"locations"`
}

type image struct {
	ID           int64             `json:"id"`
	Status       string            `json:"status"`
	Type         string            `json:"type"`
	Name         string            `json:"name"`
	Description  string            `json:"description"`
	ImageSize    *float32          `json:"image_size"`
	DiskSize     float32           `json:"disk_size"`
	Created      string            `json:"created"`
	CreatedFrom  *struct{}         `json:"created_from"`
	BoundTo      *int64            `json:"bound_to"`
	OSFlavor     string            `json:"os_flavor"`
	OSVersion    string            `json:"os_version"`
	Architecture string            `json:"architecture"`
	RapidDeploy  bool              `json:"rapid_deploy"`
	Protection   protection        `json:"protection"`
	Deprecated   *string           `json:"deprecated"`
	Deleted      *string           `json:"deleted"`
	Labels       map[string]string `json:"labels"`
}

var locations = []location{
	{ID: 1, Name: "fsn1", Description: "Falkenstein DC Park 1", Country: "DE", City: "Falkenstein", Latitude: 50.47612, Longitude: 12.370071, NetworkZone: "eu-central"},
	{ID: 2, Name: "nbg1", Description: "Nuremberg DC Park 1", Country: "DE", City: "Nuremberg", Latitude: 49.452102, Longitude: 11.076665, NetworkZone: "eu-central"},
	{ID: 3, Name: "hel1", Description: "Helsinki DC Park 1", Country: "FI", City: "Helsinki", Latitude: 60.169855, Longitude: 24.938379, NetworkZone: "eu-central"},
	{ID: 4, Name: "ash", Description: "Ashburn, VA", Country: "US", City: "Ashburn, VA", Latitude: 39.045821, Longitude: -77.487073, NetworkZone: "us-east"},
	{ID: 5, Name: "hil", Description: "Hillsboro, OR", Country: "US", City: "Hillsboro, OR", Latitude: 45.54222, Longitude: -122.951924, NetworkZone: "us-west"},
	{ID: 6, Name: "sin", Description: "Singapore", Country: "SG", City: "Singapore", Latitude: 1.283333, Longitude: 103.833333, NetworkZone: "ap-southeast"},
}

func newServerType(id int64, name, category, cpu, arch string, cores int, mem float32, disk int) serverType {
	st := serverType{
		ID: id, Name: name, Description: name, Category: category, Cores: cores, Memory: mem, Disk: disk,
		StorageType: "local", CPUType: cpu, Architecture: arch, IncludedTraffic: 21990232555520, Prices: []any{},
	}
	for _, l := range locations {
		st.Locations = append(st.Locations, serverTypeLocation{ID: l.ID, Name: l.Name, Available: true})
	}
	return st
}

var serverTypes = []serverType{
	newServerType(101, "cx22", "cost_optimized", "shared", "x86", 2, 4, 40),
	newServerType(102, "cx32", "cost_optimized", "shared", "x86", 4, 8, 80),
	newServerType(103, "cx42", "cost_optimized", "shared", "x86", 8, 16, 160),
	newServerType(104, "cx52", "cost_optimized", "shared", "x86", 16, 32, 320),
	newServerType(111, "cpx21", "regular_purpose", "shared", "x86", 3, 4, 80),
	newServerType(112, "cpx31", "regular_purpose", "shared", "x86", 4, 8, 160),
	newServerType(113, "cpx41", "regular_purpose", "shared", "x86", 8, 16, 240),
	newServerType(121, "ccx13", "general_purpose", "dedicated", "x86", 2, 8, 80),
	newServerType(122, "ccx23", "general_purpose", "dedicated", "x86", 4, 16, 160),
	newServerType(123, "ccx33", "general_purpose", "dedicated", "x86", 8, 32, 240),
	newServerType(124, "ccx43", "general_purpose", "dedicated", "x86", 16, 64, 360),
	newServerType(131, "cax11", "cost_optimized", "shared", "arm", 2, 4, 40),
	newServerType(132, "cax21", "cost_optimized", "shared", "arm", 4, 8, 80),
}

func newImage(id int64, name, flavor, version, arch string) image {
	return image{
		ID: id, Status: "available", Type: "system", Name: name, Description: name, DiskSize: 5,
		Created: "2025-01-01T00:00:00Z", OSFlavor: flavor, OSVersion: version, Architecture: arch,
		Labels: map[string]string{},
	}
}

var images = []image{
	newImage(201, "debian-12", "debian", "12", "x86"),
	newImage(202, "debian-12", "debian", "12", "arm"),
	newImage(203, "ubuntu-24.04", "ubuntu", "24.04", "x86"),
	newImage(204, "ubuntu-24.04", "ubuntu", "24.04", "arm"),
	newImage(205, "ubuntu-22.04", "ubuntu", "22.04", "x86"),
	newImage(206, "ubuntu-22.04", "ubuntu", "22.04", "arm"),
}
